"""The bi_reader role reads the score marts, including tables dbt rebuilds later, and nothing
else; creating it is idempotent, and a login without the right to create roles is told why."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from lead_scoring.bi_access import ensure_bi_reader
from lead_scoring.config import ConfigError, WarehouseConfig

pytestmark = pytest.mark.integration


@pytest.fixture
def role(pg_server: WarehouseConfig) -> Iterator[str]:
    """A role name of this test's own (roles are cluster-wide), dropped afterwards."""
    name = f"bi_reader_{uuid.uuid4().hex[:8]}"
    yield name
    with psycopg.connect(host=pg_server.host, user="postgres", dbname="postgres",
                         autocommit=True) as conn:  # fmt: skip
        for (database,) in conn.execute("select datname from pg_database where datallowconn"):
            with psycopg.connect(host=pg_server.host, user="postgres", dbname=database,
                                 autocommit=True) as db:  # fmt: skip
                if db.execute("select 1 from pg_roles where rolname = %s", (name,)).fetchone():
                    db.execute(f'drop owned by "{name}"')
        conn.execute(f'drop role if exists "{name}"')


def as_superuser(warehouse: WarehouseConfig) -> WarehouseConfig:
    return WarehouseConfig(host=warehouse.host, dbname=warehouse.dbname, user="postgres")


def test_bi_reader_reads_the_marts_and_nothing_else(warehouse: WarehouseConfig, role: str) -> None:
    with psycopg.connect(warehouse.conninfo(), autocommit=True) as owner:
        owner.execute("create schema raw_crm; create table raw_crm.contacts (id int)")
        owner.execute("create schema lead_scoring_marts")
        owner.execute("create table lead_scoring_marts.fct_lead_scores (lead_id text)")
        owner.execute("insert into lead_scoring_marts.fct_lead_scores values ('1')")
    # created by an admin login on behalf of the role that runs dbt
    assert ensure_bi_reader(
        as_superuser(warehouse), password="s3cret-for-bi", role=role, owner=warehouse.user
    )
    assert not ensure_bi_reader(as_superuser(warehouse), password=None, role=role,
                                owner=warehouse.user)  # fmt: skip
    with psycopg.connect(warehouse.conninfo(), autocommit=True) as owner:  # dbt rebuilds a mart
        owner.execute("drop table lead_scoring_marts.fct_lead_scores")
        owner.execute("create table lead_scoring_marts.fct_lead_scores as select '2' as lead_id")
        owner.execute("create view lead_scoring_marts.v_hot as select 1 as one")
    bi = WarehouseConfig(host=warehouse.host, dbname=warehouse.dbname, user=role)
    with psycopg.connect(bi.conninfo(), autocommit=True) as reader:
        assert reader.execute(
            "select lead_id from lead_scoring_marts.fct_lead_scores"
        ).fetchall() == [("2",)]
        assert reader.execute("select one from lead_scoring_marts.v_hot").fetchall() == [(1,)]
        for forbidden in (
            "select * from raw_crm.contacts",
            "insert into lead_scoring_marts.fct_lead_scores values ('x')",
            "delete from lead_scoring_marts.fct_lead_scores",
            "create table lead_scoring_marts.mine (x int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute(forbidden)


def test_a_login_that_may_not_create_roles_is_told_what_to_ask_for(
    warehouse: WarehouseConfig, role: str
) -> None:
    with pytest.raises(
        ConfigError, match=f"may not create roles: ask a DBA to run `create role {role}"
    ):
        ensure_bi_reader(warehouse, password="x-password", role=role)
    with pytest.raises(ConfigError, match="set BI_READER_PASSWORD"):
        ensure_bi_reader(warehouse, password=None, role=role)
