"""``lead-scoring airflow`` (``make airflow``): the Airflow UI on the embedded default.

Starts what the demo starts (embedded PostgreSQL, the CRM sandbox, the synthetic dataset), then
``airflow standalone`` (api-server, scheduler, dag-processor, triggerer; LocalExecutor on the
demo's metadata database in the embedded PostgreSQL, so the demo's runs show up too) on
loopback, and serves until Ctrl-C or SIGTERM. Local use keeps parallelism low: two task
slots, one API worker.

Shutting down is the part ``airflow standalone`` leaves to its caller: it stops its components
on SIGINT but dies at once on SIGTERM and leaves them running, and LocalExecutor workers whose
scheduler is gone wait for ever. ``AirflowStandalone`` therefore runs it in a session of its
own, asks it to stop with SIGINT, then sends SIGTERM to the group, and kills whatever is left:
every process of the session, and any that left it but carries the instance's marker in its
environment. A normal Ctrl-C needs none of the force; the CLI says when it had to use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

import httpx

from lead_scoring.runtime.environment import query_metadata

MARKER = "LEAD_SCORING_STANDALONE_ID"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
USER = "admin"


class StandaloneError(RuntimeError):
    """Airflow did not come up; the message says what was seen and where the log is."""


def standalone_settings(home: Path, port: int) -> dict[str, str]:
    """Airflow's settings for a local ``airflow standalone`` serving on 127.0.0.1:``port``."""
    base = f"http://127.0.0.1:{port}"
    return {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
        # Each start signs its task tokens with a fresh secret shared by all components.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / PASSWORDS_FILE),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
    }


@dataclass
class AirflowStandalone:
    """``airflow standalone`` as a child process group that is always stopped whole."""

    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def __post_init__(self) -> None:
        self.session: int | None = None
        self.marker = uuid.uuid4().hex
        self.home = Path(self.env["AIRFLOW_HOME"])
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> AirflowStandalone:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", self.port))
            except OSError:
                raise StandaloneError(
                    f"port {self.port} on 127.0.0.1 is in use: stop what serves it, or pass "
                    f"--ui-port {self.port + 1}"
                ) from None
        bin_dir = str(Path(sys.executable).parent)
        env = {
            **self.env,
            MARKER: self.marker,
            # standalone starts its components as `airflow ...` from PATH
            "PATH": os.pathsep.join([bin_dir, self.env.get("PATH", os.defpath)]),
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(Path(bin_dir) / "airflow"), "standalone"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session and group: stopped as a whole
        )
        self.session = self.process.pid

    def wait_ready(self, timeout: float = 300.0, dag_id: str = "lead_scoring") -> None:
        """Until the API answers, the scheduler is healthy and ``dag_id`` is parsed."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise StandaloneError(f"airflow standalone exited early; see {self.log_path}")
            try:
                health = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
                scheduler = health.get("scheduler", {}).get("status")
                if scheduler == "healthy" and self._dag_parsed(dag_id):
                    return
                last = f"scheduler {scheduler}, DAG {dag_id} not parsed yet"
            except (httpx.HTTPError, ValueError) as exc:
                last = f"{type(exc).__name__}"
            time.sleep(2)
        raise StandaloneError(
            f"Airflow was not ready after {timeout:.0f}s ({last}); see {self.log_path}"
        )

    def _dag_parsed(self, dag_id: str) -> bool:
        from sqlalchemy.exc import SQLAlchemyError

        try:  # before standalone has migrated the database, the table is not there yet
            row = self.query("select count(*) from serialized_dag where dag_id = :dag", dag=dag_id)
        except SQLAlchemyError:
            return False
        return bool(row and row[0][0])

    def is_paused(self, dag_id: str = "lead_scoring") -> bool:
        rows = self.query("select is_paused from dag where dag_id = :dag", dag=dag_id)
        return bool(rows and rows[0][0])

    def query(self, statement: str, **params: Any) -> list[tuple[Any, ...]]:
        """Read this instance's Airflow metadata database."""
        return query_metadata(self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], statement, **params)

    def password(self) -> str:
        """The admin password Airflow generated (kept in AIRFLOW_HOME, mode 600)."""
        path = Path(self.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
        return str(json.loads(path.read_text())[USER])

    def members(self) -> list[int]:
        """Every live process of this instance: its session (``start_new_session``) and any
        process that left the session but still carries the marker in its environment."""
        if self.session is None:
            return []
        return sorted(set(session_members(self.session)) | set(marked_processes(self.marker)))

    def stop(self, grace: float = 30.0) -> list[int]:
        """Stop every process of the instance: SIGINT to standalone (it stops its components),
        then SIGTERM to the group, then SIGKILL for what is left. LocalExecutor workers ignore
        SIGINT and wait for their scheduler's word; a scheduler that quit without it would
        leave them behind for ever, so whatever outlives the shutdown is killed. Returns the
        pids that had to be killed that way (orphans)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            group = process.pid
            # SIGINT to standalone alone: it sends each component one SIGTERM, and the
            # scheduler then ends its LocalExecutor (the workers' poison pills). A second
            # signal would make the scheduler quit at once and leave its workers waiting.
            process.send_signal(signal.SIGINT)
            if not _wait_group_gone(group, grace):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGTERM)
                _wait_group_gone(group, 10.0)
            process.wait(timeout=10)
        leftovers = self.members()
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
        return leftovers


def _group_alive(group: int) -> bool:
    """Whether a process of the group is still alive (zombies of ours do not count). The
    group was started as a session of its own, so its id is also the session's."""
    return bool(session_members(group))


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[0]


def _wait_group_gone(group: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _group_alive(group):
            return True
        time.sleep(0.5)
    return not _group_alive(group)


def session_members(session: int) -> list[int]:
    """Live processes of a session (setproctitle rewrites a process's environment, so the
    session, not the marker, is what finds Airflow's workers and API server)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            pid = int(entry.name)
            try:
                if os.getsid(pid) == session and _state(pid) not in ("Z", None):
                    found.append(pid)
            except (ProcessLookupError, PermissionError):
                continue
    return found


def marked_processes(marker: str) -> list[int]:
    """Live processes whose environment carries this standalone's marker."""
    needle = f"{MARKER}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and _state(int(entry.name)) not in ("Z", None):
            found.append(int(entry.name))
    return found


@dataclass(frozen=True)
class UiOptions:
    contacts: int = 1000
    seed: int = 42
    port: int = 8765
    ui_port: int = 8080


def run_airflow_ui(options: UiOptions) -> int:
    """Serve the Airflow UI on the embedded default until interrupted; returns an exit code."""
    from lead_scoring.runtime.demo import DemoOptions, say, start_local_stack, step

    total = 6
    say("Lead scoring in the Airflow UI (embedded PostgreSQL + CRM sandbox + airflow standalone)")
    stopping: list[int] = []

    def on_signal(signum: int, _: FrameType | None) -> None:
        stopping.append(signum)
        raise KeyboardInterrupt

    # Ctrl-C, `kill` and a closed terminal all stop everything; SIGINT is set explicitly
    # because a process started in the background inherits it ignored (and so would Airflow).
    stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, on_signal) for sig in stop_signals}
    try:
        with ExitStack() as stack:
            local = start_local_stack(
                stack, DemoOptions(contacts=options.contacts, seed=options.seed, port=options.port),
                total,
            )  # fmt: skip
            env: dict[str, Any] = {
                **local.env,
                **standalone_settings(local.airflow_home, options.ui_port),
            }
            airflow = AirflowStandalone(
                env=env, port=options.ui_port, log_path=local.airflow_home / "standalone.log"
            )
            stack.callback(_stop_and_report, airflow)
            airflow.start()
            step(6, total, "Airflow UI", f"starting (log: {airflow.log_path})")
            airflow.wait_ready()
            say()
            say(f"  Airflow UI  {airflow.url}  (user {USER}, password {airflow.password()})")
            if airflow.is_paused():
                say("  the DAG     lead_scoring is paused: press Trigger in the UI for one run,")
                say("              or unpause it for the hourly schedule")
            else:
                say("  the DAG     lead_scoring is unpaused: it runs every hour")
            say("              (each run scores as of its interval's day against the sandbox)")
            say(f"  logs        {local.airflow_home / 'logs'} and {airflow.log_path}")
            say("  Ctrl-C stops Airflow, the sandbox and the warehouse")
            while airflow.process is not None and airflow.process.poll() is None:
                time.sleep(1)
            say(f"airflow standalone exited; see {airflow.log_path}")
            return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_and_report(airflow: AirflowStandalone) -> None:
    """Stop Airflow first, then say so: with the terminal gone, printing can fail, stopping
    must not."""
    from lead_scoring.runtime.demo import say

    with contextlib.suppress(OSError):
        say("stopping Airflow ...")
    orphans = airflow.stop()
    with contextlib.suppress(OSError):
        if orphans:
            say(f"  killed {len(orphans)} process(es) that outlived Airflow's shutdown: {orphans}")
        say("  Airflow stopped; stopping the sandbox and the warehouse")
