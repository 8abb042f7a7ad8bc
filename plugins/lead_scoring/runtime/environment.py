"""The environment the job runs in locally: Airflow settings, connections, and no telemetry.

Used by the demo (for ``airflow dags test`` in a subprocess) and by the test suite (for
``dag.test()`` in-process), so both run the DAG exactly the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lead_scoring.config import CrmConfig, WarehouseConfig, repo_root

# The product phones nowhere: dbt, Great Expectations, Cosmos and Airflow usage statistics off.
NO_TELEMETRY: Mapping[str, str] = {
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "False",
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
    "SCARF_ANALYTICS": "false",
}


def metadata_url(socket_dir: str, database: str = "airflow", user: str = "airflow") -> str:
    """The SQLAlchemy URL of Airflow's metadata database on a PostgreSQL reached through its
    socket folder (psycopg2, Airflow's documented driver; Airflow derives its asyncpg URL)."""
    from sqlalchemy.engine import URL

    url = URL.create("postgresql+psycopg2", username=user, database=database,
                     query={"host": socket_dir})  # fmt: skip
    return url.render_as_string(hide_password=False)


def query_metadata(url: str, statement: str, **params: Any) -> list[tuple[Any, ...]]:
    """Rows of a read-only query on Airflow's metadata database (``:name`` parameters)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(statement), params)]
    finally:
        engine.dispose()


def airflow_settings(home: Path, metadata: str) -> dict[str, str]:
    """Airflow with its metadata at the SQLAlchemy URL ``metadata`` (a PostgreSQL database of
    its own), logs under ``home``, this repository's DAGs and plugins."""
    root = repo_root()
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # PostgreSQL, as in production: SQLite takes one writer at a time, and the scheduler
        # and a CLI command writing at once failed with "database is locked".
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__COSMOS__CACHE_DIR": str(home / "cosmos_cache"),
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "LEAD_SCORING_DBT_PROJECT_DIR": str(root / "dbt_project"),
        **NO_TELEMETRY,
    }


def job_environment(
    home: Path,
    *,
    metadata: str,
    warehouse: WarehouseConfig,
    crm: CrmConfig,
    events_path: Path,
    task_retries: int = 0,
) -> dict[str, str]:
    """Everything the DAG needs, as environment variables (connections in Airflow's JSON form)."""
    return {
        **airflow_settings(home, metadata),
        "AIRFLOW_CONN_WAREHOUSE": warehouse.to_airflow_json(),
        "AIRFLOW_CONN_CRM": crm.to_airflow_json(),
        "LEAD_SCORING_EVENTS_PATH": str(events_path),
        "LEAD_SCORING_TASK_RETRIES": str(task_retries),
    }


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment plus ``extra``, for a subprocess."""
    env = dict(os.environ)
    env.update(extra)
    return env
