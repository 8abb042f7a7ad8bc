"""dbt chores outside Airflow: parse the project (Cosmos renders the DAG from its manifest) and
lint the models with sqlfluff's dbt templater. Both run this virtualenv's tools as subprocesses,
so a dbt failure cannot take the caller down with it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

from lead_scoring.config import WarehouseConfig, dbt_project_dir, local_dir
from lead_scoring.runtime.environment import NO_TELEMETRY, child_environment


def _tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def manifest_path() -> Path:
    return dbt_project_dir() / "target" / "manifest.json"


def profile_environment(warehouse: WarehouseConfig) -> dict[str, str]:
    """The variables ``dbt_project/profiles.yml`` reads, for dbt run by hand or by sqlfluff."""
    return {
        "WAREHOUSE_HOST": warehouse.host,
        "WAREHOUSE_PORT": str(warehouse.port),
        "WAREHOUSE_USER": warehouse.user,
        "WAREHOUSE_PASSWORD": warehouse.password or "",
        "WAREHOUSE_DB": warehouse.dbname,
    }


def run_dbt(
    warehouse: WarehouseConfig, target: Path, *args: str, project: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``dbt <args>`` against ``warehouse`` with artifacts and logs under ``target`` (for the
    benchmark, backtests and the tests; the DAG runs dbt through Cosmos), in the product's
    project or a backtest's copy of it (``project``). Does not raise on failure."""
    project = project or dbt_project_dir()
    command = [
        _tool("dbt"),
        *args,
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
        "--target-path",
        str(target),
        "--log-path",
        str(target / "logs"),
    ]
    env = child_environment({**NO_TELEMETRY, **profile_environment(warehouse)})
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def build_as_of(
    warehouse: WarehouseConfig, target: Path, as_of: date, *, project: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``dbt build`` scoring as of ``as_of`` the way the DAG runs it: seeds, models,
    snapshot and data tests, not the unit tests (dbt advises against them in production)."""
    return run_dbt(
        warehouse,
        target,
        "build",
        "--exclude-resource-type",
        "unit_test",
        "--vars",
        json.dumps({"as_of": as_of.isoformat()}),
        project=project,
    )


def generate_docs(warehouse: WarehouseConfig, out_dir: Path) -> Path:
    """dbt's documentation site as one self-contained file (``dbt docs generate --static``:
    models, columns, lineage and the warehouse's catalog), opened without a server."""
    done = run_dbt(warehouse, out_dir, "docs", "generate", "--static")
    page = out_dir / "static_index.html"
    if done.returncode != 0 or not page.exists():
        raise RuntimeError(f"dbt docs generate failed:\n{done.stdout[-4000:]}{done.stderr}")
    return page


def parse_project() -> Path:
    """Write ``dbt_project/target/manifest.json``; raises with dbt's own message on failure.

    ``dbt parse`` needs a profile but no connection.
    """
    project = dbt_project_dir()
    command = [
        _tool("dbt"),
        "--quiet",
        "parse",
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
    ]
    done = subprocess.run(
        command, env=child_environment(NO_TELEMETRY), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"dbt parse failed:\n{done.stdout}{done.stderr}")
    return manifest_path()


def lint_models(*, fix: bool = False) -> int:
    """sqlfluff on the models and singular tests (``fix`` applies its fixes); returns its exit code.

    The dbt templater compiles the project, and dbt opens a connection while compiling, so an
    embedded PostgreSQL is started for the length of the lint (its own data folder).
    """
    from lead_scoring.runtime.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(local_dir() / "lint" / "pgdata")
    warehouse = server.start()
    try:
        env = child_environment({**NO_TELEMETRY, **profile_environment(warehouse)})
        command = [_tool("sqlfluff"), "fix" if fix else "lint", "models", "tests"]
        return subprocess.run(command, cwd=dbt_project_dir(), env=env, check=False).returncode
    finally:
        server.stop()
