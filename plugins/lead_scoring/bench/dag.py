"""The whole DAG, timed: ``airflow dags test`` of the real ``lead_scoring`` DAG (every task, in
one process, as the demo runs it), on an emptied warehouse and a fresh Airflow database, then
twice more after 1% new events arrived each time *through the sources* (the second is measured:
the first re-reads every contact, which the full run's sync had just written):

- web events: a new Segment export file beside the dataset's (copies of the events of 1% of
  past actor-days, moved onto the next day, new message ids); the dataset's own files are
  hard-linked, not copied, into the run's export folder;
- email events: the same 1% of email events, seeded into the CRM sandbox's event log with new
  ids. The extract asks the log for events created since its watermark; the copies are dated on
  the run's day, which lies before the previous run's watermark (the dataset ends three days
  before today), so the bench moves the email log's watermark back to that day first (only
  that one: the contacts' search keeps its own, as in production).

Each run's wall time is the ``airflow dags test`` process's (parsing the DAG included); each
task's duration comes from Airflow's metadata. The stages' own work is the tasks that do the
job's work (rules check, extract and load, raw gate, the dbt build, score gate, sync); the
rest of the wall time (the per-node report tasks of the dbt build, the turn sensor, the
summary, the gaps between tasks and parsing the DAG) is the orchestration overhead.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from lead_scoring.bench.harness import (
    BenchError,
    Dataset,
    _say,
    age_history,
    crm_sandbox,
    reset,
    sizes,
    write_calls,
)
from lead_scoring.config import CrmConfig, WarehouseConfig

DAG_ID = "lead_scoring"
NEW_EVENT_PREFIX = "bench-dag-"

# What each task of the DAG is, for the stage shares; a task not named here is orchestration.
WORK_STAGES = {
    "check_rules": "rules check",
    "extract_contacts": "extract + load",
    "extract_email_events": "extract + load",
    "load_web_events": "extract + load",
    "check_raw": "raw gate",
    "dbt_build.dbt_producer_watcher": "dbt build",
    "check_scores": "score gate",
    "sync_crm": "sync",
}

PICK = "(hashtext(%(day)s || {actor} || {moment}::date) & 2147483647) %% 10000 < %(percent)s * 100"

NEW_WEB_EVENTS = f"""
copy (
    select jsonb_set(
        jsonb_set(raw, '{{messageId}}', to_jsonb(%(prefix)s || message_id)),
        '{{timestamp}}',
        to_jsonb(to_char(
            (%(day)s::date + (event_timestamp - date_trunc('day', event_timestamp)))
                at time zone 'UTC',
            'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'
        ))
    )::text
    from raw_analytics.web_events
    where {PICK.format(actor="coalesce(user_id, anonymous_id)", moment="event_timestamp")}
) to stdout
"""

NEW_EMAIL_EVENTS = f"""
select jsonb_set(
    jsonb_set(raw, '{{id}}', to_jsonb(%(prefix)s || event_id)),
    '{{created}}',
    to_jsonb((extract(epoch from
        %(day)s::date + (created_at - date_trunc('day', created_at))) * 1000)::bigint)
)
from raw_crm.email_events
where {PICK.format(actor="recipient", moment="created_at")}
"""


def link_export(source: Path, folder: Path) -> None:
    """``folder`` holds every file of the dataset's export as a hard link (nothing copied; a
    symbolic link is not a file to fsspec, so the loader would skip it)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for path in sorted(source.iterdir()):
        try:
            os.link(path, folder / path.name)
        except OSError:  # another filesystem
            shutil.copy2(path, folder / path.name)


def add_new_events(
    warehouse: WarehouseConfig,
    *,
    day: date,
    export: Path,
    crm_url: str,
    token: str,
    percent: float = 1.0,
) -> tuple[int, int]:
    """1% new web events as a new export file, 1% new email events in the CRM's log: (web,
    email) counts."""
    from lead_scoring.sandbox.admin import SandboxAdmin
    from lead_scoring.warehouse import connect

    params = {"day": day.isoformat(), "percent": percent, "prefix": f"{NEW_EVENT_PREFIX}{day}-"}
    web = 0
    with connect(warehouse) as conn:
        with (
            (export / f"{day.isoformat()}-new.jsonl").open("wb") as out,
            conn.cursor() as cursor,
            cursor.copy(NEW_WEB_EVENTS, params) as copy,
        ):
            for chunk in copy:
                out.write(chunk)
                web += bytes(chunk).count(b"\n")
        email_rows = [row[0] for row in conn.execute(NEW_EMAIL_EVENTS, params)]
    with SandboxAdmin(crm_url, token) as admin:
        email = sum(
            admin.seed_email_events(email_rows[start : start + 5000])
            for start in range(0, len(email_rows), 5000)
        )
    return web, email


def email_log_read_from(warehouse: WarehouseConfig, day: date) -> None:
    """The email log's watermark moved back to ``day``: the copies are dated on that day, in
    the past, which in production is when they would have been created, after the previous
    run. (Widening the extracts' overlap instead, as this bench once did, also widened the
    contacts' search, which then re-read every contact the previous syncs had written.)"""
    from lead_scoring.extract.jobs import EMAIL_EVENTS_SOURCE
    from lead_scoring.warehouse import OPS, connect

    with connect(warehouse) as conn:
        moved = conn.execute(
            f"update {OPS}.extract_state set watermark = %s where source = %s",
            (datetime.combine(day, datetime.min.time(), UTC), EMAIL_EVENTS_SOURCE),
        )
        if moved.rowcount != 1:
            raise BenchError(f"no watermark of {EMAIL_EVENTS_SOURCE} to move back")
        conn.commit()


def run_dag(env: dict[str, str], logical_date: date, log: Path, conf: dict[str, Any]) -> float:
    """``airflow dags test`` in a subprocess; its wall time in seconds, or a clear error."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    started = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(
            [airflow, "dags", "test", DAG_ID, logical_date.isoformat(), "-c", json.dumps(conf)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise BenchError(f"airflow dags test exited {done.returncode} (log: {log})")
    return seconds


def task_times(metadata: str) -> dict[str, Any]:
    """The latest run's tasks: state and duration each, the run's span, per-stage totals."""
    from lead_scoring.runtime.environment import query_metadata

    rows = query_metadata(
        metadata,
        "select task_id, state, start_date, end_date, coalesce(duration, 0) from task_instance "
        "where dag_id = :dag and run_id = "
        "(select run_id from dag_run where dag_id = :dag order by id desc limit 1)",
        dag=DAG_ID,
    )
    if not rows:
        raise BenchError("the DAG run left no task in Airflow's metadata")
    failed = sorted(str(r[0]) for r in rows if r[1] not in ("success", "skipped"))
    if failed:
        raise BenchError(f"the DAG run ended with tasks not successful: {', '.join(failed)}")
    starts = [r[2] for r in rows if r[2] is not None]
    ends = [r[3] for r in rows if r[3] is not None]
    stages: dict[str, float] = {}
    for task_id, _, _, _, duration in rows:
        stage = WORK_STAGES.get(str(task_id), "orchestration tasks")
        stages[stage] = stages.get(stage, 0.0) + float(duration)
    return {
        "tasks": len(rows),
        "span_seconds": (max(ends) - min(starts)).total_seconds(),
        "stages": stages,
        "slowest_tasks": sorted(
            ((str(r[0]), round(float(r[4]), 1)) for r in rows), key=lambda t: -t[1]
        )[:8],
    }


def _figures(wall: float, times: dict[str, Any]) -> dict[str, Any]:
    work = sum(s for name, s in times["stages"].items() if name != "orchestration tasks")
    return {
        **times,
        "wall_seconds": wall,
        "work_seconds": work,
        "overhead_seconds": wall - work,
        "overhead_share": (wall - work) / wall if wall else 0.0,
    }


def dag_cycle(
    data: Dataset,
    warehouse: WarehouseConfig,
    metadata: str,
    *,
    rate_limit: int,
    work: Path,
) -> dict[str, Any]:
    """Three DAG runs on an emptied warehouse: full, then twice after 1% new events (the
    second measured, see below)."""
    from lead_scoring.runtime.dbt_tools import parse_project
    from lead_scoring.runtime.environment import child_environment, job_environment

    folder = work / "dag"
    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    portal = folder / "portal.db"
    for leftover in folder.glob("portal.db*"):
        leftover.unlink()
    shutil.copyfile(data.portal, portal)
    export = folder / "events"
    link_export(data.events, export)
    reset(warehouse)
    parse_project()
    token = secrets.token_urlsafe(16)
    home = folder / "airflow"
    shutil.rmtree(home, ignore_errors=True)
    result: dict[str, Any] = {}
    # Every lead is new to the CRM in the first run: the first-sync and change limits apply.
    conf = {"approve_large_sync": True}
    with crm_sandbox(portal, token, rate_limit, logs) as url:
        env = child_environment(
            job_environment(
                home,
                metadata=metadata,
                warehouse=warehouse,
                crm=CrmConfig(base_url=url, token=token),
                events_path=export,
            )
        )
        # The runs here follow each other by minutes, not by a schedule's hour: with the
        # default 10-minute overlap, the measured run's contact search reached back before
        # the warm-up's start, to the full run's sync of every contact, and re-read all of
        # them. The sandbox's search has no index lag for the overlap to cover.
        env["LEAD_SCORING_EXTRACT_OVERLAP_MINUTES"] = "1"
        migrate = subprocess.run(
            [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if migrate.returncode != 0:
            raise BenchError(f"airflow db migrate failed: {migrate.stderr[-2000:]}")
        first_day = data.end
        _say(f"  DAG run on the full data, as of {first_day}")
        before = write_calls(url, token)
        wall = run_dag(env, first_day, logs / "dag_full.log", conf)
        done = result["dag_full"] = _figures(wall, task_times(metadata))
        done["write_calls"] = write_calls(url, token)[0] - before[0]
        result["size_after_dag_full"] = sizes(warehouse)
        _say(f"    {done['tasks']} tasks in {wall:.1f} s ({done['overhead_share']:.0%} overhead)")

        # Two runs after 1% new events each. The first (the warm-up) follows the full run,
        # whose sync wrote every contact: that moved every contact's lastmodifieddate (as
        # HubSpot does), so its extract re-reads them all. The second follows a regular run
        # whose sync wrote only the changed scores: the steady state, the one measured.
        for day, name in ((1, "dag_warmup"), (2, "dag_daily")):
            # as if the run before was days ago, as the stage runs do before their daily builds
            age_history(warehouse)
            result[f"size_before_{name}"] = sizes(warehouse)
            next_day = first_day + timedelta(days=day)
            web, email = add_new_events(
                warehouse, day=next_day, export=export, crm_url=url, token=token
            )
            email_log_read_from(warehouse, next_day)
            _say(f"  {web:,} web and {email:,} email events new (1%); DAG run as of {next_day}")
            before = write_calls(url, token)
            wall = run_dag(env, next_day, logs / f"{name}.log", conf)
            done = result[name] = _figures(wall, task_times(metadata))
            done["added"] = web + email
            done["write_calls"] = write_calls(url, token)[0] - before[0]
            result[f"size_after_{name}"] = sizes(warehouse)
            _say(
                f"    {done['tasks']} tasks in {wall:.1f} s ({done['overhead_share']:.0%} overhead)"
            )
    return result


def _stage_order(figures: dict[str, Any]) -> Iterator[str]:
    seen = list(dict.fromkeys(WORK_STAGES.values()))
    yield from seen
    yield "orchestration tasks"
    yield from (s for s in figures["stages"] if s not in seen and s != "orchestration tasks")


def dag_section(data: Dataset, result: dict[str, Any], *, command: str) -> tuple[str, str]:
    """(heading, section) of the DAG runs for BENCHMARKS.md: each stage's seconds and share."""
    from lead_scoring.bench.report import machine_description

    full, daily = result["dag_full"], result["dag_daily"]
    heading = f"## Whole DAG, {data.contacts:,} contacts"
    growth = (
        result["size_after_dag_daily"]["warehouse_bytes"]
        - result["size_before_dag_daily"]["warehouse_bytes"]
    )
    lines = [
        heading,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine_description()}; "
        f"embedded PostgreSQL, CRM sandbox at its rate limit in its own process. Command: "
        f"`{command}`. One run each: `airflow dags test` of the real DAG (every task, one "
        f"process) on the full data ({data.web_events + data.email_events:,} events), then "
        f"after 1% new events ({daily['added']:,}) that came through the sources (a new "
        "export file and the CRM's event log; see `bench/dag.py`).",
        "",
        "| stage | full run, s | share | after 1% new events, s | share |",
        "|---|---:|---:|---:|---:|",
    ]
    for stage in _stage_order(full):
        a = full["stages"].get(stage, 0.0)
        b = daily["stages"].get(stage, 0.0)
        lines.append(
            f"| {stage} | {a:,.1f} | {a / full['wall_seconds']:.0%} "
            f"| {b:,.1f} | {b / daily['wall_seconds']:.0%} |"
        )
    for label, key in (("gaps between tasks", None), ("DAG wall time", "wall_seconds")):
        if key is None:
            a = full["wall_seconds"] - sum(full["stages"].values())
            b = daily["wall_seconds"] - sum(daily["stages"].values())
        else:
            a, b = full[key], daily[key]
        lines.append(
            f"| {label} | {a:,.1f} | {a / full['wall_seconds']:.0%} "
            f"| {b:,.1f} | {b / daily['wall_seconds']:.0%} |"
        )
    share = daily["wall_seconds"] / full["wall_seconds"]
    lines += [
        "",
        f"DAG run after 1% new events: {share:.0%} of the full run (target <= 15%: "
        f"{'met' if share <= 0.15 else '**not met**'}). Orchestration overhead (the wall time "
        f"minus the stages' own work): {full['overhead_share']:.0%} of the full run, "
        f"{daily['overhead_share']:.0%} of the run after 1% (target <= 20%: "
        f"{'met' if max(full['overhead_share'], daily['overhead_share']) <= 0.2 else '**not met**'}"
        f"). Write requests to the CRM: {full['write_calls']:,} (full), "
        f"{daily['write_calls']:,} (after 1%). Slowest tasks after 1%: "
        + ", ".join(f"`{name}` {seconds}" for name, seconds in daily["slowest_tasks"])
        + f". The warehouse grew by {growth / 2**20:,.0f} MB in the run after 1%.",
    ]
    warmup = result.get("dag_warmup")
    if warmup:
        lines[-1] += (
            f" The measured run after 1% is the second: the first ({warmup['wall_seconds']:,.1f}"
            f" s, `extract_contacts` "
            f"{dict(warmup['slowest_tasks']).get('extract_contacts', 0.0):,.1f} s, "
            f"{warmup['write_calls']:,} write requests) followed the full run, whose sync wrote "
            "every contact, so it re-read every contact from the CRM."
        )
    lines.append("")
    return heading, "\n".join(lines)
