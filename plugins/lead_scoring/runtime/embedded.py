"""The embedded PostgreSQL warehouse, from the ``pgserver`` wheel (no server to install).

pgserver starts PostgreSQL listening only on a Unix socket inside its data folder. Run as root,
it runs the server as a ``pgserver`` system user it creates, and opens the parent folders of the
data folder for reading so that user can reach it: keep the data folder inside the repository
(``.local/pgdata``, git-ignored), never in a shared place.

The job connects as a ``lead_scoring`` role to a ``warehouse`` database, like it would in
production. The embedded server trusts local socket connections, so the role's password (random
per data folder, kept beside it with mode 600) only exists because Airflow's and Cosmos's
Postgres connections require one. Airflow's own metadata lives in a database of its own on the
same server (``airflow``, role ``airflow``), as it would on a separate server in production.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from lead_scoring.config import WarehouseConfig
from lead_scoring.runtime.environment import metadata_url

log = logging.getLogger(__name__)

ROLE = "lead_scoring"
DATABASE = "warehouse"
AIRFLOW_ROLE = "airflow"
AIRFLOW_DATABASE = "airflow"


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not start; the message says why and what to do."""


def _last_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def _postgres_error(log_file: Path) -> str | None:
    """The last error line PostgreSQL's own tools wrote (initdb, pg_ctl, the server)."""
    if not log_file.exists():
        return None
    pattern = re.compile(r"(error|FATAL|PANIC):", re.IGNORECASE)
    lines = [line.strip() for line in log_file.read_text(errors="replace").splitlines()]
    errors = [ln for ln in lines if pattern.search(ln) and "Failed postgres command" not in ln]
    return errors[-1] if errors else None


def _forget_failed_server(data_dir: Path) -> None:
    """pgserver registers an exit hook before it initialises; drop it when the start failed,
    or it runs at interpreter exit against a server that never was."""
    import pgserver

    failed = pgserver.PostgresServer._instances.pop(data_dir, None)
    if failed is not None:
        atexit.unregister(failed._cleanup)


class EmbeddedPostgres:
    """Start (or reuse) the server for a data folder, and stop it again."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server: Any = None
        self._postmaster_pid: int | None = None

    @property
    def log_file(self) -> Path:
        """pgserver's own log of the last start (its commands' output)."""
        return self.data_dir.parent / "pgserver.log"

    def start(self) -> WarehouseConfig:
        """Start the server and return how to reach the ``warehouse`` database."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        runtime = self.data_dir.parent / "run"
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))  # pgserver keeps its lock file there
        # pgserver reports its commands' output only through its logger: keep it in a file
        # (not on the console) and lift PostgreSQL's own error line into our message.
        pg_logger = logging.getLogger("pgserver")
        saved = (pg_logger.level, pg_logger.propagate)
        handler = logging.FileHandler(self.log_file, mode="w")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        pg_logger.addHandler(handler)
        pg_logger.setLevel(logging.INFO)
        pg_logger.propagate = False
        try:
            import pgserver

            self._server = pgserver.get_server(self.data_dir, cleanup_mode=None)
            info = self._server.get_postmaster_info()
        except Exception as exc:
            handler.flush()
            _forget_failed_server(self.data_dir)
            raise EmbeddedPostgresError(
                f"embedded PostgreSQL could not start in {self.data_dir}: "
                f"{_postgres_error(self.log_file) or _last_line(exc)} (details: {self.log_file}); "
                "to start from an empty warehouse, run `make clean-local`"
            ) from None
        finally:
            pg_logger.removeHandler(handler)
            handler.close()
            pg_logger.setLevel(saved[0])
            pg_logger.propagate = saved[1]
        self._postmaster_pid = info.pid
        socket_dir = str(info.socket_dir)
        password = self._password()
        self._ensure_role_and_database(socket_dir, password)
        return WarehouseConfig(host=socket_dir, dbname=DATABASE, user=ROLE, password=password)

    def _password(self) -> str:
        secret_file = self.data_dir.parent / "warehouse.password"
        if not secret_file.exists():
            secret_file.write_text(secrets.token_urlsafe(24) + "\n")
            secret_file.chmod(0o600)
        return secret_file.read_text().strip()

    def _ensure_role_and_database(
        self,
        socket_dir: str,
        password: str | None,
        database: str = DATABASE,
        role: str = ROLE,
        *,
        fresh: bool = False,
    ) -> None:
        with psycopg.connect(
            host=socket_dir, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            if (
                conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone()
                is None
            ):
                conn.execute(sql.SQL("create role {} login").format(sql.Identifier(role)))
            if password is not None:
                conn.execute(
                    sql.SQL("alter role {} with login password {}").format(
                        sql.Identifier(role), sql.Literal(password)
                    )
                )
            if fresh:
                conn.execute(
                    sql.SQL("drop database if exists {} with (force)").format(
                        sql.Identifier(database)
                    )
                )
            if (
                conn.execute("select 1 from pg_database where datname = %s", (database,)).fetchone()
                is None
            ):
                conn.execute(
                    sql.SQL("create database {} owner {}").format(
                        sql.Identifier(database), sql.Identifier(role)
                    )
                )

    def database(self, name: str) -> WarehouseConfig:
        """Another database of the started server (created if missing), e.g. a backtest's
        warehouse for an imported dataset, kept apart from the job's own ``warehouse``."""
        if self._server is None:
            raise EmbeddedPostgresError("start the embedded server first")
        socket_dir = str(self._server.get_postmaster_info().socket_dir)
        password = self._password()
        self._ensure_role_and_database(socket_dir, password, name)
        return WarehouseConfig(host=socket_dir, dbname=name, user=ROLE, password=password)

    def airflow_metadata(self, *, fresh: bool = False) -> str:
        """The SQLAlchemy URL of Airflow's metadata database on the started server (created if
        missing; dropped first when ``fresh``). Trusted over the socket, so no password."""
        if self._server is None:
            raise EmbeddedPostgresError("start the embedded server first")
        socket_dir = str(self._server.get_postmaster_info().socket_dir)
        self._ensure_role_and_database(
            socket_dir, None, AIRFLOW_DATABASE, AIRFLOW_ROLE, fresh=fresh
        )
        return metadata_url(socket_dir, AIRFLOW_DATABASE, AIRFLOW_ROLE)

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT to the postmaster), waiting until the process is gone."""
        if self._server is not None:
            # Release pgserver's handle now rather than in its atexit hook, which would log
            # after the interpreter (or pytest) has closed the log streams.
            self._server.cleanup()
            atexit.unregister(self._server._cleanup)
            self._server = None
        pid = self._postmaster_pid
        if pid is None:
            return
        self._postmaster_pid = None
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        log.warning(
            "embedded PostgreSQL (pid %d) did not stop in %.0fs; sending SIGQUIT", pid, timeout
        )
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)

    def __enter__(self) -> WarehouseConfig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
