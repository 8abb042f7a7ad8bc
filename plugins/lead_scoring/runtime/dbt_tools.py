"""dbt chores outside Airflow: parse the project (Cosmos renders the DAG from its manifest) and
lint the models with sqlfluff's dbt templater. Both run this virtualenv's tools as subprocesses,
so a dbt failure cannot take the caller down with it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from lead_scoring.config import ConfigError, WarehouseConfig, dbt_project_dir, local_dir
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


# The session setting the as-of models read (dbt_project/macros/as_of.sql).
AS_OF_SETTING = "lead_scoring.as_of"
# What dbt's data tests check: `changed` (the rows a run loaded or changed) or `full`
# (dbt_project/macros/check_scope.sql).
CHECK_SCOPE_SETTING = "lead_scoring.check_scope"


def with_setting(current: str | None, name: str, value: str) -> str:
    """libpq's PGOPTIONS ``current`` (the caller's own options, kept) with ``-c name=value``;
    a value of ``name`` already there (a leftover of an earlier run in the process) is
    replaced."""
    kept = re.sub(rf"\s*-c\s*{re.escape(name)}=\S*", "", current or "").strip()
    return f"{kept} -c {name}={value}".strip()


def as_of_options(as_of: str, current: str | None = None) -> str:
    """libpq's PGOPTIONS with the as-of date added to ``current``: every connection dbt opens
    then scores as of that date, with no dbt var changed, so partial parsing holds. ``as_of``
    may be a Jinja template (the DAG's logical date)."""
    return with_setting(current, AS_OF_SETTING, as_of)


def as_of_environment(as_of: date) -> dict[str, str]:
    """The environment a dbt child process scores ``as_of`` in (not after today, UTC)."""
    today = datetime.now(UTC).date()
    if as_of > today:
        raise ConfigError(f"as_of {as_of} is after today ({today}, UTC): scores cannot be ahead")
    return {"PGOPTIONS": as_of_options(as_of.isoformat(), os.environ.get("PGOPTIONS"))}


def run_dbt(
    warehouse: WarehouseConfig,
    target: Path,
    *args: str,
    project: Path | None = None,
    as_of: date | None = None,
) -> subprocess.CompletedProcess[str]:
    """``dbt <args>`` against ``warehouse`` with artifacts and logs under ``target`` (for the
    benchmark, backtests and the tests; the DAG runs dbt through Cosmos), in the product's
    project or a backtest's copy of it (``project``), scoring as of ``as_of`` (default:
    today, UTC). Does not raise on failure."""
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
    extra = as_of_environment(as_of) if as_of else {}
    env = child_environment({**NO_TELEMETRY, **profile_environment(warehouse), **extra})
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
        project=project,
        as_of=as_of,
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
