"""The benchmark's run: data once per size, then for each run (and each revision compared) the
whole job stage by stage, each Python stage in its own process, each floor beside it.

One cycle, on an emptied warehouse:

1. **extract + load**: contacts (full refresh through the list endpoint) and email events
   from the CRM sandbox (its rate limit lifted, so the figure is our cost, not HubSpot's
   throttle), web events from the Segment export files. Floor: a plain ``COPY`` of the very
   rows the three loads stored into identical tables (same columns, indexes, constraints).
2. **raw gate** (GX, on the loads just made).
3. **full build**: ``dbt build`` (seeds, models, snapshot, data tests; not the unit tests, as
   in the DAG) on empty dbt schemas, as of the newest event's day. Floor: one bare aggregate
   pass over the events table (events per actor and day), the least any in-warehouse scoring
   of those events could cost.
4. **score gate** (GX, the day's scores and their drift).
5. **sync**: every lead is new to the CRM, so every contact is sent, by one sync process at the
   sandbox's rate limit (190 requests per rolling 10 s by default), the sandbox in its own
   process. Reference: the ceiling that limit allows (requests x 100 contacts per 10 s). Then
   one more sync with nothing changed, which must send no write request.
6. **run after 1% new events**: the history is dated back three days (a scheduled warehouse's
   history is not what the last hour loaded); then twice, 1% more events arrive (the events of
   1% of past actor-days, replayed on the next day) and ``dbt build`` runs for that day. The
   first daily run still re-reads the history's own load through the rollup's look-back; the
   second, the steady state, is measured, as a share of the full build.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from lead_scoring.config import WarehouseConfig, local_dir, repo_root

STAGES_SCRIPT = Path(__file__).with_name("stages.py")
SESSIONS_PER_CONTACT = 12.0  # about 50 events per contact (web and email)
SYNC_WINDOW_SECONDS = 10
HISTORY_AGE = "3 days"
RAW_TABLES = ("raw_crm.contacts", "raw_crm.email_events", "raw_analytics.web_events")


class BenchError(RuntimeError):
    """A stage failed; the message names it and ends with its output."""


def _say(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


# ---------------------------------------------------------------------- revisions
@dataclass(frozen=True)
class Revision:
    """The code a cycle measures: the working tree, or a commit checked out beside it."""

    label: str
    commit: str
    root: Path

    @property
    def environment(self) -> dict[str, str]:
        return {
            "PYTHONPATH": str(self.root / "plugins"),
            "LEAD_SCORING_DBT_PROJECT_DIR": str(self.root / "dbt_project"),
            "LEAD_SCORING_GX_DIR": str(self.root / "expectations"),
        }


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo_root(), check=True, capture_output=True, text=True
    ).stdout.strip()


def working_tree() -> Revision:
    try:
        commit = _git("rev-parse", "--short=10", "HEAD")
        if _git("status", "--porcelain", "--untracked-files=no"):
            commit += "+changes"
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return Revision("working tree", commit, repo_root())


def checkout(revision: str) -> Revision:
    """``revision`` checked out (detached) under .local/bench/revisions, or a clear error."""
    if revision in ("", "WORKTREE", "working-tree"):
        return working_tree()
    try:
        commit = _git("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    except subprocess.CalledProcessError:
        raise BenchError(f"--compare: {revision!r} is not a commit of this repository") from None
    root = local_dir() / "bench" / "revisions" / commit[:12]
    if not (root / "plugins" / "lead_scoring").is_dir():
        shutil.rmtree(root, ignore_errors=True)
        _git("worktree", "prune")
        _git("worktree", "add", "--detach", "--force", str(root), commit)
    return Revision(revision, commit[:10], root)


# ---------------------------------------------------------------------- processes
@dataclass
class StageRun:
    figures: dict[str, Any]
    seconds: float
    peak_rss_mb: float


def run_stage(
    stage: str,
    revision: Revision,
    env: dict[str, str],
    log_dir: Path,
    *,
    log_name: str | None = None,
    **arguments: Any,
) -> StageRun:
    """Run one stage script in its own process and read its peak RSS from ``wait4``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{log_name or stage}.log"
    started = time.monotonic()
    with log_file.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(STAGES_SCRIPT), stage, json.dumps(arguments)],
            env={**os.environ, **revision.environment, **env},
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        assert process.stdout is not None
        output = process.stdout.read()
        process.stdout.close()
        # wait4, not wait: its rusage is this stage's (and its own children's) peak RSS
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    if process.returncode != 0:
        tail = log_file.read_text(errors="replace")[-3000:]
        raise BenchError(f"stage {stage} exited {process.returncode} ({log_file}):\n{tail}")
    figures = json.loads(output.strip().splitlines()[-1])
    return StageRun(figures, seconds, usage.ru_maxrss / 1024)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def crm_sandbox(db: Path, token: str, rate_limit: int, log_dir: Path) -> Iterator[str]:
    """The CRM sandbox in a process of its own over the portal file ``db``; yields its URL."""
    from lead_scoring.sandbox.admin import SandboxAdmin

    port = _free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "sandbox.log").open("a") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "lead_scoring", "sandbox", "--port", str(port),
             "--db", str(db), "--rate-limit", str(rate_limit)],
            env={**os.environ, "LEAD_SCORING_SANDBOX_TOKEN": token},
            stdout=log, stderr=log,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        with SandboxAdmin(url, token) as admin:
            while not admin.ping():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"the CRM sandbox did not start (see {log_dir}/sandbox.log)")
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def write_calls(url: str, token: str) -> tuple[int, int]:
    """(successful batch-write calls, 429 answers) the sandbox counted so far."""
    from lead_scoring.sandbox.admin import SandboxAdmin, write_requests

    with SandboxAdmin(url, token) as admin:
        stats = admin.stats()
    limited = sum(int(r["calls"]) for r in stats["requests"] if int(r["status"]) == 429)
    return write_requests(stats)[0], limited


# ---------------------------------------------------------------------- data
@dataclass
class Dataset:
    contacts: int
    folder: Path
    web_events: int
    email_events: int
    end: date
    generated_seconds: float | None  # None: re-used from an earlier run

    @property
    def portal(self) -> Path:
        return self.folder / "portal.db"

    @property
    def events(self) -> Path:
        return self.folder / "export" / "events"


def dataset(contacts: int, *, fresh: bool = False) -> Dataset:
    """The synthetic portal and Segment export for ``contacts`` (no dirty records), made with
    the product's generator; re-used while the generator and the size are the same."""
    from lead_scoring.synth import SynthConfig, write_dataset
    from lead_scoring.synth.generator import GENERATOR_VERSION

    folder = local_dir() / "bench" / "data" / f"{contacts}"
    marker = folder / "bench.json"
    if marker.exists() and not fresh:
        known = json.loads(marker.read_text())
        if known.get("generator_version") == GENERATOR_VERSION:
            _say(f"re-using the synthetic data for {contacts:,} contacts in {folder}")
            return Dataset(
                contacts,
                folder,
                int(known["web_events"]),
                int(known["email_events"]),
                date.fromisoformat(known["end"]),
                None,
            )
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    # The two daily runs after the history stay in the past: no score is ahead of today.
    end = datetime.now(UTC).date() - timedelta(days=3)
    config = SynthConfig(
        contacts=contacts,
        seed=11,
        end=end,
        sessions_per_contact=SESSIONS_PER_CONTACT,
        dirty_share=0.0,
    )
    token = secrets.token_urlsafe(16)
    started = time.monotonic()
    last = [started]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last[0] > 30 or done == total:
            last[0] = time.monotonic()
            rate = done / max(time.monotonic() - started, 1e-9)
            _say(f"  generated {done:,} of {total:,} contacts ({rate:,.0f}/s)")

    _say(f"generating {contacts:,} synthetic contacts with their events into {folder}")
    with crm_sandbox(folder / "portal.db", token, 10**6, folder) as url:
        summary = write_dataset(
            config, crm_url=url, token=token, out_dir=folder / "export", progress=progress
        )
    seconds = time.monotonic() - started
    marker.write_text(
        json.dumps(
            {
                "generator_version": GENERATOR_VERSION,
                "contacts": contacts,
                "web_events": summary.web_events,
                "email_events": summary.email_events_inserted,
                "end": end.isoformat(),
                "seconds": seconds,
            },
            indent=2,
        )
    )
    _say(
        f"  {summary.web_events:,} web and {summary.email_events_inserted:,} email events "
        f"in {seconds:.0f} s"
    )
    return Dataset(
        contacts, folder, summary.web_events, summary.email_events_inserted, end, seconds
    )


# ---------------------------------------------------------------------- warehouse work
def reset(warehouse: WarehouseConfig) -> None:
    """Every schema but the system ones and ``public`` dropped: an empty warehouse."""
    from psycopg import sql

    from lead_scoring.warehouse import connect

    with connect(warehouse, autocommit=True) as conn:
        names = [
            str(row[0])
            for row in conn.execute(
                "select nspname from pg_namespace where nspname not like 'pg\\_%%' "
                "and nspname not in ('information_schema', 'public')"
            ).fetchall()
        ]
        for name in names:
            conn.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(name)))
        conn.execute("drop table if exists public.bench_copy_floor")


def plain_copy(warehouse: WarehouseConfig, spool: Path) -> dict[str, Any]:
    """The floor: the rows the loads stored, COPY'd into identical tables. The rows are
    rendered as COPY text first (not timed); only the COPY into the tables is timed."""
    from psycopg import sql

    from lead_scoring.warehouse import connect

    spool.mkdir(parents=True, exist_ok=True)
    records = 0
    seconds = 0.0
    with connect(warehouse) as conn:
        for table in RAW_TABLES:
            schema, name = table.split(".")
            source = sql.Identifier(schema, name)
            floor = sql.Identifier("public", f"bench_floor_{name}")
            columns = [
                str(row[0])
                for row in conn.execute(
                    "select column_name from information_schema.columns where table_schema = %s"
                    " and table_name = %s and is_generated = 'NEVER' order by ordinal_position",
                    (schema, name),
                ).fetchall()
            ]
            listed = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
            path = spool / f"{name}.copy"
            with (
                path.open("wb") as out,
                conn.cursor().copy(
                    sql.SQL("copy (select {} from {}) to stdout").format(listed, source)
                ) as copy,
            ):
                for block in copy:
                    out.write(block)
            conn.execute(sql.SQL("drop table if exists {}").format(floor))
            conn.execute(sql.SQL("create table {} (like {} including all)").format(floor, source))
            conn.commit()
            started = time.monotonic()
            with (
                path.open("rb") as data,
                conn.cursor().copy(
                    sql.SQL("copy {} ({}) from stdin").format(floor, listed)
                ) as copy,
            ):
                while block := data.read(1 << 20):
                    copy.write(block)
            conn.commit()
            seconds += time.monotonic() - started
            row = conn.execute(sql.SQL("select count(*) from {}").format(floor)).fetchone()
            records += int(row[0]) if row else 0
            conn.execute(sql.SQL("drop table {}").format(floor))
            conn.commit()
            path.unlink()
    return {"records": records, "seconds": seconds}


def bare_pass(warehouse: WarehouseConfig) -> dict[str, Any]:
    """One aggregate pass over the web events: events per actor and day."""
    from lead_scoring.warehouse import connect

    with connect(warehouse) as conn:
        started = time.monotonic()
        row = conn.execute(
            "select count(*) from (select coalesce(user_id, anonymous_id), "
            "event_timestamp::date, count(*) from raw_analytics.web_events group by 1, 2) d"
        ).fetchone()
        return {"seconds": time.monotonic() - started, "groups": int(row[0]) if row else 0}


def newest_event_day(warehouse: WarehouseConfig) -> date:
    from lead_scoring.warehouse import connect

    with connect(warehouse) as conn:
        row = conn.execute(
            "select max(event_timestamp)::date from raw_analytics.web_events"
        ).fetchone()
    if not row or row[0] is None:
        raise BenchError("no web events were loaded")
    return row[0]  # type: ignore[no-any-return]


def age_history(warehouse: WarehouseConfig) -> None:
    """Date the loaded history back, as if loaded days ago: in a scheduled warehouse the
    history is not what the last hour loaded, nor what the last build changed. Every load
    stamp moves, in the raw tables and in what dbt built from them (the rollup's
    ``last_loaded_at``), and so does every build stamp (``changed_at`` of the rollup, the
    activity state and the kinds seen, which keep their order): the data tests scoped to the
    recent rows, and the rollup's look-back, then see only the new rows, as in production.
    Each call moves every stamp, however old: called between runs, it puts ``HISTORY_AGE``
    between each run's loads and the next's, as a schedule does. (Moving only the stamps newer
    than ``HISTORY_AGE`` kept the minutes between runs the bench makes back to back: the next
    run's rollup look-back, an hour behind the last load, reached every load before it.)"""
    from psycopg import sql

    from lead_scoring.warehouse import connect

    with connect(warehouse, autocommit=True) as conn:
        stamped = conn.execute(
            "select c.table_schema, c.table_name, c.column_name "
            "from information_schema.columns as c "
            "join information_schema.tables as t "
            "on t.table_schema = c.table_schema and t.table_name = c.table_name "
            "where t.table_type = 'BASE TABLE' "
            "and (c.column_name in ('loaded_at', 'last_loaded_at') "
            # a build stamp in dbt's models; raw_crm's changed_at is when HubSpot changed a value
            "or c.column_name = 'changed_at' and c.table_schema like '%intermediate') "
            "and c.table_schema not in ('pg_catalog', 'information_schema') "
            "order by 1, 2, 3"
        ).fetchall()
        for schema, table, column in stamped:
            name = sql.Identifier(schema, table)
            stamp = sql.Identifier(column)
            conn.execute(
                sql.SQL("update {name} set {stamp} = {stamp} - {age}::interval").format(
                    name=name, stamp=stamp, age=sql.Literal(HISTORY_AGE)
                )
            )
        # FULL: an update leaves every old row version behind, which would double the tables
        # on disk and slow the next runs' scans, unlike a history loaded days ago
        for schema, table in dict.fromkeys((s, t) for s, t, _ in stamped):
            conn.execute(sql.SQL("vacuum full analyze {}").format(sql.Identifier(schema, table)))


NEW_EVENTS_SQL = (
    """
insert into raw_analytics.web_events (
    message_id, event_type, event_name, anonymous_id, user_id, event_timestamp, raw,
    source_file, source_line, source_format, batch_id, loaded_at
)
select
    %(prefix)s || message_id, event_type, event_name, anonymous_id, user_id,
    %(day)s::timestamptz + (event_timestamp - date_trunc('day', event_timestamp)),
    raw, source_file, source_line, source_format, batch_id, now()
from raw_analytics.web_events
where
    message_id not like 'bench-next-%%'
    and (hashtext(%(day)s || coalesce(user_id, anonymous_id) || event_timestamp::date)
    & 2147483647) %% 10000 < %(percent)s * 100
""",
    """
insert into raw_crm.email_events (
    event_id, event_type, recipient, created_at, raw, batch_id, loaded_at
)
select
    %(prefix)s || event_id, event_type, recipient,
    %(day)s::timestamptz + (created_at - date_trunc('day', created_at)),
    raw, batch_id, now()
from raw_crm.email_events
where
    event_id not like 'bench-next-%%'
    and (hashtext(%(day)s || recipient || created_at::date) & 2147483647) %% 10000
    < %(percent)s * 100
""",
)


def add_new_events(warehouse: WarehouseConfig, day: date, percent: float = 1.0) -> int:
    """Copies of the events of ``percent`` % of the past actor-days, moved onto ``day`` and
    loaded now (a hash of the day and the actor-day picks them: reproducible, other leads each
    day): a day's events come in sessions of the leads active that day."""
    from lead_scoring.warehouse import connect

    added = 0
    with connect(warehouse) as conn:
        for statement in NEW_EVENTS_SQL:
            params = {"day": day.isoformat(), "percent": percent, "prefix": f"bench-next-{day}-"}
            added += conn.execute(statement, params).rowcount
        conn.commit()
        conn.execute("analyze raw_analytics.web_events")
        conn.execute("analyze raw_crm.email_events")
        conn.commit()
    return added


# ---------------------------------------------------------------------- one cycle
@dataclass
class Cycle:
    """The figures of one run of the whole job on one revision."""

    revision: str
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def keep(self, name: str, stage: StageRun | dict[str, Any]) -> dict[str, Any]:
        if isinstance(stage, StageRun):
            # "seconds" is the stage's own time (from inside the process, without Python's
            # start-up); "wall_seconds" is the process's
            figures = {
                **stage.figures,
                "wall_seconds": stage.seconds,
                "peak_rss_mb": stage.peak_rss_mb,
            }
        else:
            figures = dict(stage)
        self.stages[name] = figures
        return figures


def cycle(
    revision: Revision,
    data: Dataset,
    warehouse: WarehouseConfig,
    *,
    rate_limit: int,
    work: Path,
) -> Cycle:
    """The whole job once on an emptied warehouse (see the module's docstring)."""
    result = Cycle(revision.commit)
    logs = work / "logs" / revision.commit
    target = work / "dbt-target" / revision.commit
    token = secrets.token_urlsafe(16)
    env = {
        "LEAD_SCORING_BENCH_WAREHOUSE": json.dumps(asdict(warehouse)),
        "LEAD_SCORING_BENCH_CRM_TOKEN": token,
    }
    # The sync writes into the portal: each cycle starts from the generated one.
    portal = work / "portal.db"
    for leftover in work.glob("portal.db*"):
        leftover.unlink()
    shutil.copyfile(data.portal, portal)
    reset(warehouse)

    with crm_sandbox(portal, token, 10**6, logs) as url:
        env["LEAD_SCORING_BENCH_CRM_URL"] = url
        for stage in ("extract_contacts", "extract_email_events"):
            _say(f"  {stage}")
            done = result.keep(stage, run_stage(stage, revision, env, logs))
            _say(f"    {done['records']:,} records in {done['seconds']:.1f} s")
    _say("  load_web_events")
    done = result.keep(
        "load_web_events",
        run_stage("load_web_events", revision, env, logs, folder=str(data.events)),
    )
    _say(f"    {done['records']:,} records in {done['seconds']:.1f} s")
    _say("  plain COPY of the same rows (floor)")
    done = result.keep("copy_floor", plain_copy(warehouse, work / "spool"))
    _say(f"    {done['records']:,} rows in {done['seconds']:.1f} s")

    _say("  raw gate")
    # the run of the data's last day: its data interval ends at the next midnight
    interval_end = datetime.combine(data.end + timedelta(days=1), datetime.min.time(), UTC)
    done = result.keep(
        "raw_gate",
        run_stage("raw_gate", revision, env, logs, reference=interval_end.isoformat()),
    )
    _say(f"    {'passed' if done['passed'] else 'FAILED'} in {done['seconds']:.1f} s")
    as_of = newest_event_day(warehouse)
    _say(f"  full dbt build as of {as_of}")
    done = result.keep(
        "full_build",
        run_stage("dbt_build", revision, env, logs, target=str(target), as_of=as_of.isoformat()),
    )
    _say(f"    {done['nodes']} nodes in {done['seconds']:.1f} s")
    result.keep("size_after_full", sizes(warehouse))
    done = result.keep("bare_pass", bare_pass(warehouse))
    _say(f"  bare aggregate pass (floor): {done['seconds']:.1f} s")
    _say("  score gate")
    done = result.keep(
        "score_gate", run_stage("score_gate", revision, env, logs, as_of=as_of.isoformat())
    )
    _say(f"    {'passed' if done['passed'] else 'FAILED'} in {done['seconds']:.1f} s")

    with crm_sandbox(portal, token, rate_limit, logs) as url:
        env["LEAD_SCORING_BENCH_CRM_URL"] = url
        for name in ("sync", "sync_unchanged"):
            time.sleep(SYNC_WINDOW_SECONDS + 1)  # start as a scheduled run: the window empty
            before = write_calls(url, token)
            _say(f"  {name} at {rate_limit} requests per {SYNC_WINDOW_SECONDS} s")
            synced = run_stage(
                "sync",
                revision,
                env,
                logs,
                log_name=name,
                as_of=as_of.isoformat(),
                rate_limit=rate_limit,
            )
            after = write_calls(url, token)
            done = result.keep(name, synced)
            done["write_calls"] = after[0] - before[0]
            done["server_429"] = after[1] - before[1]
            _say(
                f"    {done['accepted']:,} contacts, {done['write_calls']:,} write requests in "
                f"{done['seconds']:.1f} s"
            )

    age_history(warehouse)
    for day, name in ((1, "first_daily_build"), (2, "daily_build")):
        added = add_new_events(warehouse, as_of + timedelta(days=day))
        _say(f"  {added:,} new events (1%); dbt build as of {as_of + timedelta(days=day)}")
        done = result.keep(
            name,
            run_stage(
                "dbt_build",
                revision,
                env,
                logs,
                log_name=name,
                target=str(target),
                as_of=(as_of + timedelta(days=day)).isoformat(),
            ),
        )
        done["added"] = added
        _say(f"    {done['seconds']:.1f} s")
        result.keep(f"size_after_{name}", sizes(warehouse))
    done = result.keep(
        "dbt_fixed_cost",
        run_stage(
            "dbt_fixed_cost",
            revision,
            env,
            logs,
            target=str(target),
            as_of=(as_of + timedelta(days=2)).isoformat(),
        ),
    )
    _say(f"  dbt's fixed cost (a build of no node): {done['seconds']:.1f} s")
    result.stages["rows"] = table_rows(warehouse)
    return result


def sizes(warehouse: WarehouseConfig) -> dict[str, int]:
    """Bytes on disk of the whole warehouse database and of its raw tables (with indexes and
    TOAST): what the scoring adds is the difference."""
    from lead_scoring.warehouse import connect

    with connect(warehouse) as conn:
        row = conn.execute(
            "select pg_database_size(current_database()), "
            "(select coalesce(sum(pg_total_relation_size(c.oid)), 0) from pg_class as c "
            "join pg_namespace as n on n.oid = c.relnamespace "
            "where n.nspname in ('raw_crm', 'raw_analytics') and c.relkind = 'r')"
        ).fetchone()
    assert row is not None
    return {"warehouse_bytes": int(row[0]), "raw_bytes": int(row[1])}


def table_rows(warehouse: WarehouseConfig) -> dict[str, int]:
    """Live rows of the big tables (PostgreSQL's statistics)."""
    from lead_scoring.warehouse import connect

    with connect(warehouse) as conn:
        return {
            str(name): int(rows)
            for name, rows in conn.execute(
                "select relname, n_live_tup from pg_stat_user_tables where relname in "
                "('int_activities__rolled_up_daily', 'fct_lead_scores', 'lead_score_history', "
                "'fct_lead_score_ledger', 'fct_lead_score_summary', 'web_events', "
                "'email_events', 'contacts')"
            ).fetchall()
        }
