"""Benchmark of the scoring build (``make bench``): a full ``dbt build`` against a run after 1%
new events, and both against one bare aggregate pass over the events table.

1. Synthetic contacts and their histories (``lead_scoring.synth``, no dirty records) go into the
   raw tables through the product's own row builders and ``load_batch`` (COPY), as an extract
   would put them there. Sizes: ``--scoring-contacts`` (default 100,000) and
   ``--scoring-sessions`` per contact (default 12, which gives about 5M events).
2. **Full build**: ``dbt build`` (seeds, models, snapshot, data tests; not the unit tests, as in
   the DAG) on an empty dbt schema, scoring as of the newest event's day.
3. **Run after 1% new events**: the history's load time moves 3 days back (the next run does
   not come minutes after the first load); then twice, 1% more events arrive and ``dbt
   build`` runs for that as-of day, as scheduled daily runs do. The second is measured. The
   new events are copies of the events of a random 1% of past actor-days (one visitor's or
   one recipient's events of one day), moved to the next day and loaded now: a day's events
   come in sessions of the leads active that day, not as one event for every other lead.
4. **Bare pass**: ``select ... group by`` actor and day over ``raw_analytics.web_events`` once,
   the least any scoring of those events could cost.

Each dbt build is one ``dbt build`` process (the DAG runs the same work as one Cosmos task per
node, which adds dbt's start-up per task but not warehouse work). Node timings come from
``run_results.json``; the slowest nodes are in the report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from lead_scoring.config import WarehouseConfig

SECTION = "## Scoring: full build, run after 1% new events, bare pass"


@dataclass
class BuildFigure:
    label: str
    as_of: date
    seconds: float
    nodes: int
    model_seconds: float
    test_seconds: float
    slowest: list[tuple[str, float]] = field(default_factory=list)


# ---------------------------------------------------------------------- data
def _bundles(contacts: int, sessions: float, end: date) -> Iterator[Any]:
    from lead_scoring.synth.generator import SynthConfig, make_contact

    config = SynthConfig(
        contacts=contacts, seed=11, end=end, sessions_per_contact=sessions, dirty_share=0.0
    )
    for index in range(contacts):
        yield make_contact(config, index)
        if (index + 1) % 20_000 == 0:
            print(f"    {index + 1:,} contacts generated", flush=True)


def load_synthetic(
    warehouse: WarehouseConfig, contacts: int, sessions: float, end: date
) -> dict[str, int]:
    """Contacts, email events and web events into the raw tables (one load batch each)."""
    from lead_scoring.extract.hubspot import contact_row, email_event_row
    from lead_scoring.extract.segment import event_row
    from lead_scoring.load.batch import load_batch
    from lead_scoring.load.tables import CONTACTS, EMAIL_EVENTS, WEB_EVENTS

    now = datetime.now(UTC)

    def contact_rows() -> Iterator[Any]:
        for bundle in _bundles(contacts, sessions, end):
            record = dict(bundle.contact, id=str(bundle.index + 1), archived=False)
            record["properties"] = dict(
                record["properties"],
                hs_object_id=str(bundle.index + 1),
                createdate=record["createdAt"],
            )
            yield contact_row(record)

    def email_rows() -> Iterator[Any]:
        for bundle in _bundles(contacts, sessions, end):
            for event in bundle.email_events:
                yield email_event_row(event, now=now)

    def web_rows() -> Iterator[Any]:
        for bundle in _bundles(contacts, sessions, end):
            for line, event in enumerate(bundle.web_events, start=1):
                text = json.dumps(event, separators=(",", ":"))
                yield event_row(event, text, f"bench/contact-{bundle.index}.jsonl", line, now)

    counts = {}
    for name, table, rows in (
        ("contacts", CONTACTS, contact_rows()),
        ("email_events", EMAIL_EVENTS, email_rows()),
        ("web_events", WEB_EVENTS, web_rows()),
    ):
        print(f"  loading {name}", flush=True)
        result = load_batch(warehouse, table=table, source=f"bench.{name}", records=rows)
        if result.rows_quarantined:
            raise RuntimeError(f"{name}: {result.rows_quarantined} synthetic rows quarantined")
        counts[name] = result.rows_inserted
    return counts


def _reusable_data(warehouse: WarehouseConfig, contacts: int) -> dict[str, int] | None:
    """Counts of an earlier run's data of the same size (minus its added events), or None."""
    from lead_scoring.warehouse import connect

    with connect(warehouse, autocommit=True) as conn:
        present = conn.execute("select to_regclass('raw_analytics.web_events')").fetchone()
        if not present or present[0] is None:
            return None
        conn.execute("delete from raw_analytics.web_events where message_id like 'bench-next-%%'")
        conn.execute("delete from raw_crm.email_events where event_id like 'bench-next-%%'")
        row = conn.execute(
            "select (select count(distinct contact_id) from raw_crm.contacts), "
            "(select count(*) from raw_crm.email_events), "
            "(select count(*) from raw_analytics.web_events)"
        ).fetchone()
    if not row or row[0] != contacts:
        return None
    return {"contacts": row[0], "email_events": row[1], "web_events": row[2]}


HISTORY_AGE = "3 days"


def age_history(warehouse: WarehouseConfig) -> None:
    """Date the loaded history back, as if loaded days ago: in a scheduled warehouse the
    history is not what the last hour loaded (which the rollup's look-back and the tests on
    recent loads would otherwise re-read whole)."""
    from lead_scoring.warehouse import connect

    with connect(warehouse, autocommit=True) as conn:
        for table in (
            "raw_crm.contacts",
            "raw_crm.email_events",
            "raw_analytics.web_events",
            "raw_analytics.identifies",
        ):
            conn.execute(
                f"update {table} set loaded_at = loaded_at - interval '{HISTORY_AGE}' "
                f"where loaded_at > now() - interval '{HISTORY_AGE}'"
            )
            conn.execute(f"vacuum analyze {table}")


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
    (hashtext(%(day)s || coalesce(user_id, anonymous_id) || event_timestamp::date)
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
    (hashtext(%(day)s || recipient || created_at::date) & 2147483647) %% 10000
    < %(percent)s * 100
""",
)


def add_new_events(warehouse: WarehouseConfig, day: date, percent: float) -> int:
    """Copies of the events of ``percent`` % of the actor-days, moved onto ``day`` and loaded
    now (a hash of the day and the actor-day picks them: reproducible, other leads each day)."""
    from lead_scoring.warehouse import connect

    with connect(warehouse) as conn:
        before = _event_count(conn)
        for statement in NEW_EVENTS_SQL:
            params = {"day": day.isoformat(), "percent": percent, "prefix": f"bench-next-{day}-"}
            conn.execute(statement, params)
        conn.commit()
        conn.execute("analyze raw_analytics.web_events")
        conn.execute("analyze raw_crm.email_events")
        conn.commit()
        return _event_count(conn) - before


def _event_count(conn: Any) -> int:
    row = conn.execute(
        "select (select count(*) from raw_analytics.web_events) "
        "+ (select count(*) from raw_crm.email_events)"
    ).fetchone()
    return int(row[0])


def newest_event_day(warehouse: WarehouseConfig) -> date:
    from lead_scoring.warehouse import connect

    with connect(warehouse) as conn:
        row = conn.execute(
            "select max(event_timestamp)::date from raw_analytics.web_events"
        ).fetchone()
    if not row or row[0] is None:
        raise RuntimeError("no web events were loaded")
    return row[0]  # type: ignore[no-any-return]


def bare_pass(warehouse: WarehouseConfig) -> tuple[float, int]:
    """One aggregate pass over the web events: rows per actor and day."""
    from lead_scoring.warehouse import connect

    with connect(warehouse) as conn:
        started = time.monotonic()
        row = conn.execute(
            "select count(*) from (select coalesce(user_id, anonymous_id), "
            "event_timestamp::date, count(*) from raw_analytics.web_events group by 1, 2) d"
        ).fetchone()
        return time.monotonic() - started, int(row[0]) if row else 0


# ---------------------------------------------------------------------- dbt
def dbt_build(warehouse: WarehouseConfig, target: Path, as_of: date, label: str) -> BuildFigure:
    from lead_scoring.runtime.dbt_tools import build_as_of

    print(f"  dbt build as of {as_of} ({label})", flush=True)
    started = time.monotonic()
    done = build_as_of(warehouse, target, as_of)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"dbt build failed ({label}):\n{done.stdout[-4000:]}")
    results = json.loads((target / "run_results.json").read_text())["results"]
    timed = [(r["unique_id"], float(r["execution_time"])) for r in results]
    return BuildFigure(
        label=label,
        as_of=as_of,
        seconds=seconds,
        nodes=len(timed),
        model_seconds=sum(t for uid, t in timed if not uid.startswith("test.")),
        test_seconds=sum(t for uid, t in timed if uid.startswith("test.")),
        slowest=sorted(timed, key=lambda item: -item[1])[:6],
    )


# ---------------------------------------------------------------------- orchestration
def run(contacts: int, sessions: float, out: Path, *, reuse: bool = False) -> dict[str, Any]:
    from lead_scoring.config import local_dir
    from lead_scoring.runtime.embedded import EmbeddedPostgres
    from lead_scoring.warehouse import connect, ensure_landing_zone

    root = local_dir() / "bench"
    root.mkdir(parents=True, exist_ok=True)
    target = root / "dbt-target"
    # The two simulated days after the history stay in the past: no score is ahead of today.
    end = datetime.now(UTC).date() - timedelta(days=3)
    with EmbeddedPostgres(root / "pgdata") as warehouse:
        counts = _reusable_data(warehouse, contacts) if reuse else None
        with connect(warehouse, autocommit=True) as conn:
            raw = "" if counts else "raw_crm, raw_analytics, lead_scoring_ops, "
            conn.execute(
                f"drop schema if exists {raw}lead_scoring, lead_scoring_staging, "
                "lead_scoring_intermediate, lead_scoring_marts, lead_scoring_rules cascade"
            )
        started = time.monotonic()
        with connect(warehouse, autocommit=True) as conn:
            ensure_landing_zone(conn)  # also indexes data an older version loaded
        reused = counts is not None
        if counts:
            print(f"re-using the {counts['contacts']:,} contacts already loaded", flush=True)
        else:
            print(f"loading {contacts:,} synthetic contacts and their events", flush=True)
            counts = load_synthetic(warehouse, contacts, sessions, end)
        load_seconds = time.monotonic() - started
        print(f"  {counts} in {load_seconds:.0f}s", flush=True)
        as_of = newest_event_day(warehouse)
        full = dbt_build(warehouse, target, as_of, "full build")
        print(f"  {full.seconds:.1f}s", flush=True)
        bare_full, groups = bare_pass(warehouse)
        age_history(warehouse)  # the next run comes days after the history was loaded
        # Two daily runs: the first one's rollup look-back still re-reads the history's own
        # load (it was the last load); the second is the steady state that gets measured.
        for day in (1, 2):
            added = add_new_events(warehouse, as_of + timedelta(days=day), 1.0)
            print(f"  day {day}: added {added:,} events", flush=True)
            incremental = dbt_build(
                warehouse, target, as_of + timedelta(days=day), "run after 1% new events"
            )
            print(f"  {incremental.seconds:.1f}s", flush=True)
            if day == 1:
                first_daily = incremental
        with connect(warehouse) as conn:
            sizes: dict[str, int] = dict(
                conn.execute(
                    "select relname, n_live_tup from pg_stat_user_tables where relname in "
                    "('int_activities__rolled_up_daily', 'fct_lead_scores', "
                    "'fct_lead_score_ledger', 'lead_score_history')"
                ).fetchall()
            )
    results = {
        "counts": counts,
        "load_seconds": None if reused else load_seconds,
        "events": counts["web_events"] + counts["email_events"],
        "added": added,
        "groups": groups,
        "full": full,
        "incremental": incremental,
        "first_daily": first_daily.seconds,
        "bare": bare_full,
        "sizes": sizes,
    }
    write_report(results, out)
    return results


def write_report(results: dict[str, Any], out: Path) -> None:
    from lead_scoring.bench import machine_description, replace_section

    full: BuildFigure = results["full"]
    incremental: BuildFigure = results["incremental"]
    bare = results["bare"]
    counts = results["counts"]
    loaded = (
        "re-used from an earlier run"
        if results["load_seconds"] is None
        else f"loaded through the product's row builders and COPY in "
        f"{results['load_seconds']:.0f} s"
    )
    lines = [
        SECTION,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine_description()}; embedded "
        "PostgreSQL (pgserver) with its default settings. Written by `make bench` "
        "(`python -m lead_scoring.bench --only scoring`).",
        "",
        f"Data: {counts['contacts']:,} contacts, {results['events']:,} events "
        f"({counts['web_events']:,} web, {counts['email_events']:,} email; {loaded}), two "
        f"scoring models. Each daily run adds about {results['added']:,} events (1%: the "
        "events of 1% of past actor-days, replayed on the next day).",
        "",
        "| run | as of | wall seconds | model seconds | test seconds | of full build "
        "| vs bare pass |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for figure in (full, incremental):
        lines.append(
            f"| {figure.label} | {figure.as_of} | {figure.seconds:.1f} "
            f"| {figure.model_seconds:.1f} | {figure.test_seconds:.1f} "
            f"| {figure.seconds / full.seconds:.0%} | {figure.seconds / bare:.1f} |"
        )
    lines += [
        f"| bare aggregate pass over web events (actor x day, {results['groups']:,} groups) "
        f"| | {bare:.1f} | | | {bare / full.seconds:.1%} | 1.0 |",
        "",
        f"The run is the second daily run after the history's load: the first one "
        f"({results['first_daily']:.1f} s) still re-reads the whole history, because the rollup "
        "re-reads the rows of the latest load with a one-hour look-back (for loads that "
        "commit late), and in this set-up the latest load is the history itself.",
        "",
        "Slowest nodes (seconds): full build "
        + ", ".join(f"`{uid.split('.')[-1]}` {s:.1f}" for uid, s in full.slowest)
        + "; run after 1% new events "
        + ", ".join(f"`{uid.split('.')[-1]}` {s:.1f}" for uid, s in incremental.slowest)
        + ".",
        "",
        "Rows: "
        + ", ".join(f"`{name}` {rows:,}" for name, rows in sorted(results["sizes"].items()))
        + ".",
        "",
    ]
    replace_section(out, SECTION, "\n".join(lines))
