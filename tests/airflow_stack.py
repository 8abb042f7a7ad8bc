"""`lead-scoring airflow` (what `make airflow` runs) as a test fixture: a real `airflow
standalone` on the embedded default, and a two-day backfill handed to its scheduler.

The stack and its backfill take minutes, most of them waiting on the scheduler, so the root
conftest starts them when the session starts (if a test that needs them is selected): the
backfill runs beside the other tests, and `tests/runtime/test_airflow_standalone.py` finds it
done or nearly done.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from lead_scoring.config import WarehouseConfig, gx_context_dir

REPO = Path(__file__).resolve().parents[1]
CONTACTS = 300
SEED = 42  # the CLI's default seed: the single runs below rebuild the same dataset
# The dataset ends today; the backfill covers the two days before (a backfill creates no run
# whose interval has not ended).
END = datetime.now(UTC).date()
DAYS = [END - timedelta(days=2), END - timedelta(days=1)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Ui:
    """The running `lead-scoring airflow` process and what it printed."""

    def __init__(self, local: Path, process: subprocess.Popen[str], lines: list[str]) -> None:
        self.local = local
        self.process = process
        self.lines = lines
        match = next(re.search(r"Airflow UI\s+(\S+)\s+\(user (\S+), password (\S+)\)", line)
                     for line in lines if "Airflow UI  http" in line)  # fmt: skip
        assert match
        self.url, self.user, self.password = match.groups()
        self.home = local / "airflow"
        # `airflow standalone` runs in a session of its own: every Airflow process is in it
        standalone = [c for c in psutil.Process(process.pid).children()
                      if "standalone" in " ".join(c.cmdline())]  # fmt: skip
        assert len(standalone) == 1
        self.session = standalone[0].pid

    def airflow(self, *args: str) -> subprocess.CompletedProcess[str]:
        """An `airflow` CLI command against this instance's metadata."""
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
        }
        done = subprocess.run(
            [str(Path(sys.executable).with_name("airflow")), *args],
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, (
            f"airflow {' '.join(args)} exited {done.returncode}\n"
            f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
        )
        return done

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Read this instance's Airflow metadata (SQLite)."""
        import sqlite3

        with sqlite3.connect(self.home / "airflow.db", timeout=10) as db:
            return db.execute(sql).fetchall()

    def runs(self) -> list[tuple[str, str, str, str]]:
        """(run id, run type, logical date, state) of every run, oldest first."""
        return [
            (str(r[0]), str(r[1]), str(r[2]), str(r[3]))
            for r in self.query(
                "select run_id, run_type, logical_date, state from dag_run "
                "where dag_id = 'lead_scoring' order by logical_date"
            )
        ]

    def warehouse(self) -> WarehouseConfig:
        """The embedded warehouse the UI's runs write (trusted over its socket)."""
        sockets = sorted((self.local / "pgdata").glob(".s.PGSQL.*"))
        assert sockets, "the embedded PostgreSQL is not running"
        return WarehouseConfig(host=str(sockets[0].parent), dbname="warehouse", user="postgres")

    def processes(self) -> list[psutil.Process]:
        """Every live process of this instance: in Airflow's session, or with its Airflow
        home in the environment (a process that left the session)."""
        found = []
        for process in psutil.process_iter():
            try:
                if process.pid == os.getpid() or process.status() == psutil.STATUS_ZOMBIE:
                    continue
                if os.getsid(process.pid) == self.session or (
                    process.environ().get("AIRFLOW_HOME") == str(self.home)
                    and process.pid != self.process.pid
                ):
                    found.append(process)
            except (psutil.Error, OSError):
                continue
        return found


@pytest.fixture(scope="session")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ui]:
    local = tmp_path_factory.mktemp("airflow-ui")
    gx_dir = local / "expectations"
    shutil.copytree(gx_context_dir(), gx_dir, ignore=shutil.ignore_patterns("uncommitted"))
    env = {
        **os.environ,
        "LEAD_SCORING_LOCAL_DIR": str(local),
        "LEAD_SCORING_GX_DIR": str(gx_dir),
        "LEAD_SCORING_SCHEDULE": "@daily",
        # the scheduler runs what is queued (the backfill) but creates no scheduled runs
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("lead-scoring")), "airflow",
         "--contacts", str(CONTACTS), "--port", str(free_port()),
         "--ui-port", str(free_port())],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        lines.append(line.rstrip())
        if "Ctrl-C stops" in line:
            break
    assert any("Ctrl-C stops" in line for line in lines), "\n".join(lines)
    started = Ui(local, process, lines)
    yield started
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    for leftover in started.processes():
        leftover.kill()


@pytest.fixture(scope="session")
def backfill_started(ui: Ui) -> None:
    """A two-day backfill handed to the scheduler. Backfill runs of a paused DAG wait in the
    queue, so the DAG is unpaused first (the scheduler here creates no scheduled runs)."""
    ui.airflow("dags", "unpause", "lead_scoring")
    ui.airflow(
        "backfill", "create", "--dag-id", "lead_scoring",
        "--from-date", DAYS[0].isoformat(), "--to-date", DAYS[-1].isoformat(),
    )  # fmt: skip


def backfill_finished(ui: Ui) -> list[tuple[str, str, str, str]]:
    """The backfill's runs, once each has ended."""
    deadline = time.monotonic() + 1200
    while time.monotonic() < deadline:
        runs = [r for r in ui.runs() if r[1] == "backfill"]
        if len(runs) == len(DAYS) and all(r[3] in ("success", "failed") for r in runs):
            return runs
        time.sleep(5)
    raise AssertionError(f"the backfill did not finish: {ui.runs()}")


@pytest.fixture(scope="session")
def backfill(ui: Ui, backfill_started: None) -> list[tuple[str, str, str, str]]:
    """The finished two-day backfill."""
    return backfill_finished(ui)
