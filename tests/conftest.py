"""Shared fixtures: a real embedded PostgreSQL, the CRM sandbox over real HTTP, Airflow with its
metadata in that PostgreSQL.

Airflow reads its configuration when first imported, so the embedded server starts and the
environment is set in ``pytest_configure``, before any test module (and so Airflow) is imported:
a throwaway AIRFLOW_HOME under ``.local/test``, a fresh ``airflow`` metadata database, this
repository's DAGs, no examples, no telemetry, no task retries (``dag.test()`` would sit out the
retry delay).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_ROOT = REPO / ".local" / "test"
AIRFLOW_HOME = TEST_ROOT / f"airflow-{os.getpid()}"

sys.path.insert(0, str(REPO / "plugins"))

from lead_scoring.config import WarehouseConfig  # noqa: E402
from lead_scoring.runtime.embedded import EmbeddedPostgres  # noqa: E402
from lead_scoring.runtime.environment import airflow_settings  # noqa: E402
from lead_scoring.sandbox import Sandbox  # noqa: E402

SERVER = EmbeddedPostgres(TEST_ROOT / "pgdata")
_STARTED: list[WarehouseConfig] = []


def pytest_configure(config: pytest.Config) -> None:
    """One embedded PostgreSQL for the session (its data under .local/test, like the demo's),
    started before collection because Airflow's metadata lives in it."""
    _STARTED.append(SERVER.start())
    metadata = SERVER.airflow_metadata(fresh=True)
    os.environ.update(airflow_settings(AIRFLOW_HOME, metadata))
    os.environ["LEAD_SCORING_TASK_RETRIES"] = "0"
    os.environ["LEAD_SCORING_LOCAL_DIR"] = str(TEST_ROOT)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)
    airflow_settings_module = sys.modules.get("airflow.settings")
    if airflow_settings_module is not None:  # close Airflow's pooled connections first
        airflow_settings_module.dispose_orm()
    if _STARTED:
        SERVER.stop()


@pytest.fixture(scope="session")
def pg_server() -> WarehouseConfig:
    """The session's embedded PostgreSQL (the ``warehouse`` database and its role)."""
    return _STARTED[0]


@pytest.fixture
def warehouse(pg_server: WarehouseConfig) -> Iterator[WarehouseConfig]:
    """A fresh, empty database on the embedded server for one test."""
    with fresh_database(pg_server) as config:
        yield config


@contextmanager
def fresh_database(pg_server: WarehouseConfig) -> Iterator[WarehouseConfig]:
    """A new, empty database on the embedded server, dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = {"host": pg_server.host, "user": "postgres", "dbname": "postgres", "autocommit": True}
    with psycopg.connect(**admin) as conn:  # type: ignore[arg-type]
        conn.execute(
            sql.SQL("create database {} owner {}").format(
                sql.Identifier(name), sql.Identifier(pg_server.user)
            )
        )
    yield WarehouseConfig(
        host=pg_server.host, dbname=name, user=pg_server.user, password=pg_server.password
    )
    with psycopg.connect(**admin) as conn:  # type: ignore[arg-type]
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """The CRM sandbox on a free loopback port, with an empty in-memory portal."""
    with Sandbox(port=0, token=f"test-{uuid.uuid4().hex}") as server:
        yield server


@pytest.fixture(scope="session")
def airflow_metadata() -> str:
    """The SQLAlchemy URL of Airflow's metadata database, migrated once for the session."""
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run(
        [airflow, "db", "migrate"], check=True, capture_output=True, env=dict(os.environ)
    )
    return os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


@pytest.fixture(scope="session")
def dbt_manifest() -> Path:
    """The dbt manifest Cosmos renders the DAG from (what `make manifest` writes)."""
    from lead_scoring.runtime.dbt_tools import parse_project

    return parse_project()
