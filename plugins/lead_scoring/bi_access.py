"""A read-only role for BI tools: it reads the score marts and nothing else.

Metabase, Superset or Looker connect as ``bi_reader``: ``select`` on every table and view of
``lead_scoring_marts`` (scores, ledger, leads, funnel, history), now and as dbt rebuilds them
(default privileges of the role that runs dbt), and no access to the raw data, the rules'
staging, the job's bookkeeping or anything it could change.

``lead-scoring grant-bi-reader`` runs this against the ``warehouse`` connection (the compose
stack does it in ``airflow-init``); the password comes from ``BI_READER_PASSWORD`` only.
Creating a role needs CREATEROLE: a warehouse login without it gets the SQL to hand to a DBA.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from lead_scoring.config import ConfigError, WarehouseConfig
from lead_scoring.warehouse import MARTS, connect

DEFAULT_ROLE = "bi_reader"


def grant_statements(role: str, database: str, owner: str) -> list[sql.Composed]:
    """What the role is given (the same list a DBA is shown)."""
    names = {
        "role": sql.Identifier(role),
        "database": sql.Identifier(database),
        "schema": sql.Identifier(MARTS),
        "owner": sql.Identifier(owner),
    }
    return [
        sql.SQL(text).format(**names)
        for text in (
            "grant connect on database {database} to {role}",
            "create schema if not exists {schema} authorization {owner}",
            "grant usage on schema {schema} to {role}",
            "grant select on all tables in schema {schema} to {role}",
            "alter default privileges for role {owner} in schema {schema} "
            "grant select on tables to {role}",
        )
    ]


def ensure_bi_reader(
    warehouse: WarehouseConfig,
    *,
    password: str | None,
    role: str = DEFAULT_ROLE,
    owner: str | None = None,
) -> bool:
    """Create ``role`` if it is missing (a login with ``password``) and grant it read access to
    the marts; idempotent. ``owner``: the role that builds the marts with dbt (default: the
    connection's own). Returns whether the role was created."""
    with connect(warehouse, autocommit=True) as conn:
        if owner is None:
            row = conn.execute("select current_user").fetchone()
            owner = str(row[0]) if row else warehouse.user
        exists = conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone()
        created = False
        if not exists:
            if not password:
                raise ConfigError(
                    f"the role {role} does not exist: set BI_READER_PASSWORD to create it"
                )
            try:
                conn.execute(
                    sql.SQL("create role {} login password {}").format(
                        sql.Identifier(role), sql.Literal(password)
                    )
                )
                created = True
            except psycopg.errors.InsufficientPrivilege:
                raise ConfigError(
                    f"the warehouse login {warehouse.user} may not create roles: ask a DBA to run "
                    f"`create role {role} login password '...'`, then run this again"
                ) from None
        try:
            with conn.transaction():
                for statement in grant_statements(role, warehouse.dbname, owner):
                    conn.execute(statement)
        except psycopg.errors.InsufficientPrivilege as exc:
            shown = "; ".join(s.as_string(conn) for s in grant_statements(role, warehouse.dbname,
                                                                           owner))  # fmt: skip
            raise ConfigError(
                f"the warehouse login {warehouse.user} may not grant {role} its access "
                f"({exc.diag.message_primary}): ask a DBA to run: {shown}"
            ) from None
    return created
