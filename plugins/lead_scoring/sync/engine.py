"""Reverse-ETL engine: write changed scores to a CRM, once each, whatever happens on the way.

The CRM is a ``Target`` (``lead_scoring.sync.hubspot``: HubSpot contacts through batch update;
``lead_scoring.sync.salesforce``: Salesforce Leads through Bulk API 2.0 upsert). The engine
does the rest, the same way for both:

Only leads whose payload changed since the CRM last accepted it are sent. The sync ledger
(``lead_scoring_ops.crm_sync_ledger``) holds, per CRM, lead and scoring model, the hash of the
payload the CRM accepted; one set-based query builds every current score's payload and hash in
SQL and compares them with it, so Python only sends what that query returns. The ledger is
updated in the same transaction as each batch's outcome is recorded. Before a batch leaves,
its changes are committed to ``crm_sync_in_flight`` (write-ahead) and the same transaction
that records the answer removes them. A run killed with a batch in flight leaves those rows;
the next run reads those leads back from the CRM and records as accepted what the CRM already
holds, so a change is sent once even across a crash, and what the CRM never got is sent by
that run.

Per-record failures are handled one by one: a lead the CRM no longer has (deleted, merged,
converted: the target says which errors mean that) is recorded as ``not_found`` and not retried
forever. A refused record is ``failing`` in the ledger (attempts, last error) and tried again
by the next runs; after ``max_attempts`` refusals in a row of the same payload it is
``gave_up`` until its payload changes. What the CRM accepted before is kept beside the failure.

The CRM only moves forward in time: a run for an as-of date older than the newest one this
CRM was synced with (a backfill, a re-run of a past day) is recorded as ``skipped`` and sends
nothing, so it never overwrites today's scores with last month's.

Before anything is sent the changes are counted: a run above ``max_changes`` fails with nothing
sent unless approved; a dry run keeps what it would send in ``crm_sync_dry_run_changes``.
Batches go out ``concurrency`` at a time from sender threads that only talk to the CRM (the
target's client paces them to the rate limit); this thread writes ahead and records answers.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

import psycopg

from lead_scoring.config import WarehouseConfig, env_int
from lead_scoring.warehouse import MARTS, OPS, RULES, connect, ensure_landing_zone

log = logging.getLogger(__name__)

SYNC_DDL = f"""
-- Per lead and model: the payload the CRM last accepted (null if it never accepted one), and
-- for a payload the CRM keeps refusing, how often in a row, its hash and the last error.
create table if not exists {OPS}.crm_sync_ledger (
    crm text not null default 'hubspot',
    lead_id text not null,
    scoring_model_id text not null,
    payload jsonb,
    payload_hash text,
    status text not null,
    synced_at timestamptz not null,
    sync_run_id uuid not null,
    attempts integer not null default 0,
    failed_payload_hash text,
    last_error text,
    primary key (crm, lead_id, scoring_model_id),
    constraint crm_sync_ledger_status_check
        check (status in ('accepted', 'not_found', 'failing', 'gave_up'))
);

create table if not exists {OPS}.crm_sync_runs (
    sync_run_id uuid primary key,
    crm text not null default 'hubspot',
    dag_run_id text,
    as_of_date date not null,
    dry_run boolean not null,
    status text not null
        check (status in ('running', 'succeeded', 'failed', 'skipped', 'abandoned')),
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    scores_considered integer not null default 0,
    changed integer not null default 0,
    sent integer not null default 0,
    accepted integer not null default 0,
    not_found integer not null default 0,
    failed integer not null default 0,
    requests integer not null default 0,
    retries integer not null default 0,
    rate_limited integer not null default 0,
    duration_seconds numeric(12, 3),
    error text
);

-- Write-ahead: the changes of the batch being sent, committed before the request leaves and
-- removed with the ledger update that records its answer. Rows left here mean a run died with
-- a batch in flight: the next run asks the CRM what it holds before sending them again.
create table if not exists {OPS}.crm_sync_in_flight (
    crm text not null default 'hubspot',
    lead_id text not null,
    scoring_model_id text not null,
    payload jsonb not null,
    payload_hash text not null,
    sync_run_id uuid not null,
    sent_at timestamptz not null,
    primary key (crm, lead_id, scoring_model_id)
);

-- What a dry run would send: one row per lead and model, with what the CRM was last given.
create table if not exists {OPS}.crm_sync_dry_run_changes (
    sync_run_id uuid not null,
    lead_id text not null,
    scoring_model_id text not null,
    payload jsonb not null,
    previous_payload jsonb,
    primary key (sync_run_id, lead_id, scoring_model_id)
);
"""

# A ledger created before records could fail gains the columns (once).
LEDGER_MIGRATION = f"""
alter table {OPS}.crm_sync_ledger add column if not exists attempts integer not null default 0;
alter table {OPS}.crm_sync_ledger add column if not exists failed_payload_hash text;
alter table {OPS}.crm_sync_ledger add column if not exists last_error text;
alter table {OPS}.crm_sync_ledger alter column payload drop not null;
alter table {OPS}.crm_sync_ledger alter column payload_hash drop not null;
alter table {OPS}.crm_sync_ledger drop constraint if exists crm_sync_ledger_status_check;
alter table {OPS}.crm_sync_ledger add constraint crm_sync_ledger_status_check
    check (status in ('accepted', 'not_found', 'failing', 'gave_up'));
"""

# A ledger from before the second CRM target: its rows are HubSpot's; keys gain the CRM.
TARGET_MIGRATION = f"""
alter table {OPS}.crm_sync_ledger add column if not exists crm text not null default 'hubspot';
alter table {OPS}.crm_sync_ledger drop constraint if exists crm_sync_ledger_pkey;
alter table {OPS}.crm_sync_ledger add primary key (crm, lead_id, scoring_model_id);
alter table {OPS}.crm_sync_in_flight add column if not exists crm text not null
    default 'hubspot';
alter table {OPS}.crm_sync_in_flight drop constraint if exists crm_sync_in_flight_pkey;
alter table {OPS}.crm_sync_in_flight add primary key (crm, lead_id, scoring_model_id);
alter table {OPS}.crm_sync_runs add column if not exists crm text not null default 'hubspot';
"""

# A metrics table from before runs could be skipped or abandoned accepts the new statuses.
RUNS_STATUS_MIGRATION = f"""
alter table {OPS}.crm_sync_runs drop constraint if exists crm_sync_runs_status_check;
alter table {OPS}.crm_sync_runs add constraint crm_sync_runs_status_check
    check (status in ('running', 'succeeded', 'failed', 'skipped', 'abandoned'));
"""

# Runs still 'running' when the lock is ours died (killed worker, lost host): close them with
# what the ledger and the write-ahead say they did. Runs before a kill-proof counter existed
# count only what this can see: answers recorded (ledger rows stamped with the run's id) and
# changes still in flight.
CLOSE_ABANDONED = f"""
with done as (
    select
        runs.sync_run_id,
        count(*) filter (where ledger.status = 'accepted') as accepted,
        count(*) filter (where ledger.status = 'not_found') as not_found,
        count(*) filter (where ledger.status in ('failing', 'gave_up')) as failed
    from {OPS}.crm_sync_runs as runs
    left join {OPS}.crm_sync_ledger as ledger
        on ledger.sync_run_id = runs.sync_run_id and ledger.crm = runs.crm
    where runs.crm = %(crm)s and runs.status = 'running'
    group by runs.sync_run_id
),
flying as (
    select sync_run_id, count(*) as in_flight
    from {OPS}.crm_sync_in_flight where crm = %(crm)s group by sync_run_id
)
update {OPS}.crm_sync_runs as runs set
    status = 'abandoned',
    finished_at = now(),
    accepted = done.accepted,
    not_found = done.not_found,
    failed = done.failed,
    sent = done.accepted + done.not_found + done.failed + coalesce(flying.in_flight, 0),
    error = 'abandoned: the process running it stopped before it ended (killed?); closed by '
        || 'sync ' || %(closer)s || ' with what the ledger recorded; '
        || coalesce(flying.in_flight, 0) || ' change(s) in flight are checked against the CRM'
from done
left join flying on flying.sync_run_id = done.sync_run_id
where runs.sync_run_id = done.sync_run_id
returning runs.sync_run_id, runs.accepted, coalesce(flying.in_flight, 0)
"""

DEFAULT_MAX_CHANGES = 50_000
DEFAULT_FIRST_SYNC_MAX_LEADS = 2_000
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_CONCURRENCY = 8
PROGRESS_SECONDS = 15.0


class TooManyChanges(RuntimeError):
    """More changes than a run may send without approval: a wrong rule or a broken mart can
    flip thousands of CRM records at once. Nothing was sent."""


def max_changes_from_env() -> int:
    """``LEAD_SCORING_SYNC_MAX_CHANGES`` (default 50,000; 0 = no limit)."""
    return env_int("LEAD_SCORING_SYNC_MAX_CHANGES", DEFAULT_MAX_CHANGES, 0)


def max_first_sync_leads_from_env() -> int:
    """``LEAD_SCORING_SYNC_FIRST_SYNC_MAX_LEADS`` (default 2,000; 0 = no limit): the most
    contacts the first sync of a CRM (nothing in its ledger yet) may write without approval.
    A first sync has nothing to be compared with, so its size is the only guard."""
    return env_int("LEAD_SCORING_SYNC_FIRST_SYNC_MAX_LEADS", DEFAULT_FIRST_SYNC_MAX_LEADS, 0)


def concurrency_from_env() -> int:
    """``LEAD_SCORING_SYNC_CONCURRENCY`` (default 8): batches in flight at once. With a batch
    call taking a few hundred milliseconds, one at a time would leave most of the rate limit
    unused; the client's rate limiter, not this number, decides how fast calls go out."""
    return env_int("LEAD_SCORING_SYNC_CONCURRENCY", DEFAULT_CONCURRENCY, 1)


def max_attempts_from_env() -> int:
    """``LEAD_SCORING_SYNC_MAX_ATTEMPTS`` (default 5): runs in a row the CRM may refuse the same
    payload of a contact before the sync gives up on it (until the payload changes)."""
    return env_int("LEAD_SCORING_SYNC_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, 1)


# The values written per scoring model, each named ``<crm_property_prefix>_<suffix>``
# (scoring_models.csv); a target maps the names to its own fields.
SUFFIXES = (
    "score",
    "band",
    "fit_grade",
    "mql",
    "mql_date",
    "sql",
    "sql_date",
    "top_reasons",
    "ruleset_version",
    "scored_at",
)
# Each value as the CRM's property text (``""`` clears a value), in SQL over
# ``fct_lead_scores as scores``. The scoring time is not part of the change test: a new
# scoring time alone is not a change worth a CRM write.
PAYLOAD_VALUES = {
    "score": "scores.total_score::text",
    "band": "scores.band",
    "fit_grade": "scores.fit_grade",
    "mql": "case when scores.is_mql then 'true' else 'false' end",
    "mql_date": "to_char(scores.mql_date, 'YYYY-MM-DD')",
    "sql": "case when scores.is_sql then 'true' else 'false' end",
    "sql_date": "to_char(scores.sql_date, 'YYYY-MM-DD')",
    "top_reasons": "scores.top_reasons",
    "ruleset_version": "scores.ruleset_version",
}
UNHASHED = {
    "scored_at": (
        "to_char(scores.scored_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
    ),
}
assert set(PAYLOAD_VALUES) | set(UNHASHED) == set(SUFFIXES)


def _json_object(values: dict[str, str]) -> str:
    pairs = ", ".join(
        f"models.crm_property_prefix || '_{suffix}', coalesce({value}, '')"
        for suffix, value in values.items()
    )
    return f"jsonb_build_object({pairs})"


# The hash of what the CRM would hold: md5 of the payload without the scoring time, as
# jsonb's canonical text. A ledger written before the hash was computed in SQL (64 characters,
# sha256 in Python) gets the same hash from the payload it holds, once.
HASH_VERSION = "payload_hash: md5 of the payload without the scoring time (jsonb text)"
REHASH_LEDGER = f"""
update {OPS}.crm_sync_ledger as ledger
set payload_hash = md5((ledger.payload - (models.crm_property_prefix || '_scored_at'))::text)
from {RULES}.scoring_models as models
where
    ledger.scoring_model_id = models.scoring_model_id
    and ledger.payload is not null
    and length(ledger.payload_hash) = 64;
comment on table {OPS}.crm_sync_ledger is '{HASH_VERSION}';
"""

# Every current score with its payload and whether the CRM needs it: a lead the CRM does not
# have is not sent again, nor a payload the CRM already holds or gave up on.
SCORED = f"""
with payloads as (
    select
        scores.lead_id,
        scores.scoring_model_id,
        {_json_object(PAYLOAD_VALUES)} as unhashed_payload,
        {_json_object(UNHASHED)} as scored
    from {MARTS}.fct_lead_scores as scores
    inner join {RULES}.scoring_models as models
        on scores.scoring_model_id = models.scoring_model_id
),
hashed as (
    select
        payloads.lead_id,
        payloads.scoring_model_id,
        payloads.unhashed_payload || payloads.scored as payload,
        md5(payloads.unhashed_payload::text) as payload_hash
    from payloads
)
select
    hashed.lead_id,
    hashed.scoring_model_id,
    hashed.payload,
    hashed.payload_hash,
    ledger.payload as previous_payload,
    ledger.lead_id is null or not (
        ledger.status = 'not_found'
        or hashed.payload_hash = coalesce(ledger.payload_hash, '')
        or (ledger.status = 'gave_up'
            and hashed.payload_hash = coalesce(ledger.failed_payload_hash, ''))
    ) as is_changed
from hashed
left join {OPS}.crm_sync_ledger as ledger
    on
        ledger.crm = %(crm)s
        and hashed.lead_id = ledger.lead_id
        and hashed.scoring_model_id = ledger.scoring_model_id
"""
COUNT_CHANGES = f"""
select
    count(*),
    count(*) filter (where scored.is_changed),
    count(distinct scored.lead_id) filter (where scored.is_changed)
from ({SCORED}) as scored
"""


@dataclass(frozen=True)
class Change:
    lead_id: str
    scoring_model_id: str
    payload: dict[str, str]
    payload_hash: str
    previous_payload: dict[str, str] | None = None


@dataclass
class Answer:
    """What the CRM said to one batch: refused lead ids with (category, message), and how
    many extra requests isolating bad records took."""

    refused: dict[str, tuple[str, str]] = field(default_factory=dict)
    splits: int = 0


Record = tuple[str, dict[str, str]]  # lead id, its values (the payloads of all its changes)


class Target(Protocol):
    """A CRM the engine writes to. ``write`` runs in sender threads, several at once."""

    name: str  # the ledger's key: 'hubspot', 'salesforce'
    batch_size: int  # leads per write
    gone: frozenset[str]  # error categories meaning the lead is no longer there to update

    def counters(self) -> tuple[int, int, int]:
        """Requests made, retries, rate-limited answers so far."""
        ...

    def prepare(self, prefixes: list[str]) -> None:
        """Make sure the fields of these scoring models exist (before the first write)."""
        ...

    def write(self, records: list[Record]) -> Answer:
        """Write one batch; raises when the CRM cannot be reached or refuses it whole."""
        ...

    def read_back(self, lead_ids: list[str], names: list[str]) -> dict[str, dict[str, str]]:
        """What the CRM holds for these leads (``""`` for empty), by lead id; leads it does
        not have are left out."""
        ...


@dataclass
class SyncResult:
    sync_run_id: str
    as_of: date
    dry_run: bool
    crm: str = "hubspot"
    scores_considered: int = 0
    changed: int = 0
    sent: int = 0
    accepted: int = 0
    not_found: int = 0
    failed: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    seconds: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)
    gave_up: int = 0
    split_batches: int = 0
    reconciled: int = 0  # in flight when an earlier run died, found applied in the CRM
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    skipped: str | None = None  # why nothing was even compared (an older as-of date)

    def summary(self) -> str:
        if self.skipped:
            return f"CRM sync for {self.as_of} ({self.crm}): skipped: {self.skipped}"
        mode = "dry run: would send" if self.dry_run else "sent"
        return (
            f"CRM sync for {self.as_of} ({self.crm}): {self.scores_considered} scores, "
            f"{self.changed} changed, "
            f"{mode} {self.sent} ({self.accepted} accepted, {self.not_found} not found, "
            f"{self.failed} failed, {self.gave_up} given up) in {self.requests} requests "
            f"({self.retries} retries, {self.split_batches} refused batches split, "
            f"{self.rate_limited} rate-limited) in {self.seconds:.1f}s"
        )


def _changes(
    conn: psycopg.Connection[Any], crm: str, *, previous: bool = False
) -> Iterator[Change]:
    """The changes to send to ``crm``, by lead: one set-based query computes every current
    score's payload and hash and compares it with the sync ledger. ``previous``: with the
    payload the CRM last accepted (for a dry run's report)."""
    query = f"""
        select
            scored.lead_id,
            scored.scoring_model_id,
            scored.payload,
            scored.payload_hash,
            {"scored.previous_payload" if previous else "null::jsonb"}
        from ({SCORED}) as scored
        where scored.is_changed
        order by scored.lead_id, scored.scoring_model_id
    """
    with conn.cursor(name="sync_changes") as cursor:
        cursor.itersize = 5000
        cursor.execute(query, {"crm": crm})
        for lead_id, model_id, payload, digest, last in cursor:
            yield Change(str(lead_id), str(model_id), payload, str(digest), last)


def _as_arrays(changes: list[Change]) -> dict[str, list[str]]:
    """The changes as one array per column: a batch's bookkeeping is one statement each
    (``unnest``), not one round trip per row."""
    return {
        "leads": [c.lead_id for c in changes],
        "models": [c.scoring_model_id for c in changes],
        "payloads": [json.dumps(c.payload) for c in changes],
        "hashes": [c.payload_hash for c in changes],
    }


CHANGES_TABLE = (
    "unnest(%(leads)s::text[], %(models)s::text[], %(payloads)s::jsonb[], %(hashes)s::text[]) "
    "as changes (lead_id, scoring_model_id, payload, payload_hash)"
)


def _record(
    conn: psycopg.Connection[Any], changes: list[Change], status: str, result: SyncResult
) -> None:
    if not changes:
        return
    conn.execute(
        f"""
        insert into {OPS}.crm_sync_ledger (
            crm, lead_id, scoring_model_id, payload, payload_hash, status, synced_at,
            sync_run_id
        )
        select %(crm)s, lead_id, scoring_model_id, payload, payload_hash, %(status)s, now(),
            %(run)s
        from {CHANGES_TABLE}
        on conflict (crm, lead_id, scoring_model_id) do update set
            payload = excluded.payload,
            payload_hash = excluded.payload_hash,
            status = excluded.status,
            synced_at = excluded.synced_at,
            sync_run_id = excluded.sync_run_id,
            attempts = 0,
            failed_payload_hash = null,
            last_error = null
        """,
        {"crm": result.crm, "status": status, "run": result.sync_run_id, **_as_arrays(changes)},
    )


def run_sync(
    warehouse: WarehouseConfig,
    target: Target,
    as_of: date,
    *,
    dag_run_id: str | None = None,
    dry_run: bool = False,
    max_changes: int = DEFAULT_MAX_CHANGES,
    approve_changes: bool = False,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    concurrency: int = DEFAULT_CONCURRENCY,
    max_first_sync_leads: int = DEFAULT_FIRST_SYNC_MAX_LEADS,
) -> SyncResult:
    """Send the as-of date's changed scores to ``target``, in its batch size, up to
    ``concurrency`` batches at once (the target's client paces them to the rate limit).

    The changes are counted before anything is sent: above ``max_changes`` (0 = no limit) the
    run raises ``TooManyChanges`` and sends nothing, unless ``approve_changes``. A dry run
    writes what it would send to ``crm_sync_dry_run_changes`` (with what the CRM holds now)."""
    result = SyncResult(
        sync_run_id=str(uuid.uuid4()),
        as_of=as_of,
        dry_run=dry_run,
        crm=target.name,
        max_attempts=max_attempts,
    )
    started = time.monotonic()
    baseline = target.counters()

    def measure() -> None:
        result.seconds = time.monotonic() - started
        now = target.counters()
        result.requests = now[0] - baseline[0]
        result.retries = now[1] - baseline[1]
        result.rate_limited = now[2] - baseline[2]

    with connect(warehouse, autocommit=True) as control:
        ensure_landing_zone(control)
        control.execute(SYNC_DDL)
        for column, migration in (("attempts", LEDGER_MIGRATION), ("crm", TARGET_MIGRATION)):
            if not control.execute(
                "select 1 from information_schema.columns where table_schema = %s "
                "and table_name = 'crm_sync_ledger' and column_name = %s",
                (OPS, column),
            ).fetchone():
                control.execute(migration)
        constraint = control.execute(
            "select pg_get_constraintdef(oid) from pg_constraint "
            "where conname = 'crm_sync_runs_status_check'"
        ).fetchone()
        if constraint and "abandoned" not in str(constraint[0]):
            control.execute(RUNS_STATUS_MIGRATION)
        hashed = control.execute(
            f"select obj_description('{OPS}.crm_sync_ledger'::regclass, 'pg_class')"
        ).fetchone()
        if not hashed or hashed[0] != HASH_VERSION:
            control.execute(REHASH_LEDGER)
        # One sync per CRM at a time; the lock dies with the session of a killed process, so
        # every run still 'running' once we hold it was abandoned.
        control.execute(
            "select pg_advisory_lock(hashtext(%s))", (f"lead_scoring.sync:{target.name}",)
        )
        for closed, accepted, flying in control.execute(
            CLOSE_ABANDONED, {"crm": target.name, "closer": result.sync_run_id}
        ).fetchall():
            log.warning(
                "sync %s never ended (its process was killed?): closed as abandoned; it had "
                "%d change(s) accepted and %d in flight, which this run checks with the CRM",
                closed,
                accepted,
                flying,
            )
        control.execute(
            f"insert into {OPS}.crm_sync_runs "
            "(sync_run_id, crm, dag_run_id, as_of_date, dry_run, status) "
            "values (%s, %s, %s, %s, %s, 'running')",
            (result.sync_run_id, target.name, dag_run_id, as_of, dry_run),
        )
        newer = None if dry_run else _newest_synced(control, target.name, as_of)
        scored = None if dry_run else _scores_current_as_of(control, as_of)
        if newer or scored:
            result.skipped = (
                f"the CRM holds scores as of {newer}, later than {as_of}"
                if newer
                else f"the current scores are as of {scored}, later than {as_of}"
            ) + ": a backfill or a re-run of a past date never moves the CRM back in time"
            measure()
            _record_run(control, result, None)
            log.warning("%s", result.summary())
            return result
        try:
            with connect(warehouse) as reader, connect(warehouse) as writer:
                if not dry_run:
                    _reconcile_in_flight(writer, target, result)
                # The changes are read twice, counted first and then streamed to the CRM, so
                # memory stays flat however many there are; one snapshot serves both passes.
                reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                prefixes = [
                    str(row[0])
                    for row in reader.execute(
                        f"select crm_property_prefix from {RULES}.scoring_models"
                    )
                ]
                counted = reader.execute(COUNT_CHANGES, {"crm": target.name}).fetchone()
                assert counted is not None
                result.scores_considered, result.changed, changed_leads = map(int, counted)
                changes = _changes(reader, target.name, previous=dry_run)
                first_sync = not reader.execute(
                    f"select exists (select 1 from {OPS}.crm_sync_ledger where crm = %s)",
                    (target.name,),
                ).fetchone()[0]  # type: ignore[index]
                if dry_run:
                    _keep_dry_run(writer, changes, result.sync_run_id)
                    result.sent = changed_leads  # leads it would write
                elif first_sync and max_first_sync_leads and changed_leads > max_first_sync_leads:
                    if not approve_changes:
                        raise TooManyChanges(
                            f"this is the first sync to {target.name} (nothing was ever sent "
                            f"to it) and it would write {changed_leads:,} contacts, more than "
                            f"the {max_first_sync_leads:,} a first sync may write without "
                            "approval (LEAD_SCORING_SYNC_FIRST_SYNC_MAX_LEADS); nothing was "
                            "sent. Check the scores (dry_run=true shows every change), then "
                            "re-run with approve_large_sync"
                        )
                    log.warning(
                        "first sync to %s: %d contacts, above %d: approved for this run",
                        target.name,
                        changed_leads,
                        max_first_sync_leads,
                    )
                elif max_changes and result.changed > max_changes:
                    if not approve_changes:
                        raise TooManyChanges(
                            f"{result.changed:,} scores changed, more than the "
                            f"{max_changes:,} a run may send without approval "
                            "(LEAD_SCORING_SYNC_MAX_CHANGES); nothing was sent. Check the "
                            "ruleset and the scores, then re-run with approve_large_sync"
                        )
                    log.warning(
                        "%d changes, above the limit of %d: approved for this run",
                        result.changed,
                        max_changes,
                    )
                if not dry_run and result.changed:  # nothing changed: not one CRM call
                    target.prepare(prefixes)
                    log.info(
                        "sending %d changes of %d leads to %s, %d batches at a time",
                        result.changed,
                        changed_leads,
                        target.name,
                        concurrency,
                    )
                    _send_all(
                        writer,
                        target,
                        _batches(changes, target.batch_size),
                        result,
                        concurrency,
                        changed_leads,
                    )
        except BaseException as exc:
            measure()
            _record_run(control, result, exc)
            raise
        measure()
        _record_run(control, result, None)
    log.info("%s", result.summary())
    return result


def _newest_synced(conn: psycopg.Connection[Any], crm: str, as_of: date) -> date | None:
    """The as-of date of the newest sync this CRM took, if it is later than ``as_of``."""
    row = conn.execute(
        f"select max(as_of_date) from {OPS}.crm_sync_runs "
        "where crm = %s and status = 'succeeded' and not dry_run",
        (crm,),
    ).fetchone()
    newest = row[0] if row else None
    return newest if newest is not None and newest > as_of else None


def _scores_current_as_of(conn: psycopg.Connection[Any], as_of: date) -> date | None:
    """The date the current scores are as of (the newest of the daily summary), if it is later
    than ``as_of``: a backfill of an older date leaves the current scores as they are."""
    row = conn.execute(
        f"select to_regclass('{MARTS}.fct_lead_score_summary') is not null"
    ).fetchone()
    if not (row and row[0]):
        return None
    row = conn.execute(f"select max(as_of_date) from {MARTS}.fct_lead_score_summary").fetchone()
    newest = row[0] if row else None
    return newest if newest is not None and newest > as_of else None


def _record_refused(
    conn: psycopg.Connection[Any], refused: list[tuple[Change, str]], result: SyncResult
) -> list[tuple[Change, int]]:
    """Count a refusal of each change's payload (in a row, for the same payload); at
    ``max_attempts`` the lead and model are given up on until their payload changes. What the
    CRM accepted before is kept. Returns the changes given up on now, with their attempts."""
    gave_up: list[tuple[Change, int]] = []
    for change, error in refused:
        row = conn.execute(
            f"""
            insert into {OPS}.crm_sync_ledger as ledger (
                crm, lead_id, scoring_model_id, status, synced_at, sync_run_id,
                attempts, failed_payload_hash, last_error
            )
            values (
                %(crm)s, %(lead)s, %(model)s, %(status)s, now(), %(run)s, 1, %(hash)s, %(error)s
            )
            on conflict (crm, lead_id, scoring_model_id) do update set
                attempts = case when ledger.failed_payload_hash = excluded.failed_payload_hash
                    then ledger.attempts + 1 else 1 end,
                status = case when (case when ledger.failed_payload_hash
                    = excluded.failed_payload_hash then ledger.attempts + 1 else 1 end)
                    >= %(max)s then 'gave_up' else 'failing' end,
                failed_payload_hash = excluded.failed_payload_hash,
                last_error = excluded.last_error,
                synced_at = excluded.synced_at,
                sync_run_id = excluded.sync_run_id
            returning status, attempts
            """,
            {
                "crm": result.crm,
                "lead": change.lead_id,
                "model": change.scoring_model_id,
                "status": "gave_up" if result.max_attempts <= 1 else "failing",
                "run": result.sync_run_id,
                "hash": change.payload_hash,
                "error": error[:2000],
                "max": result.max_attempts,
            },
        ).fetchone()
        if row and row[0] == "gave_up":
            gave_up.append((change, int(row[1])))
    return gave_up


def _land(conn: psycopg.Connection[Any], changes: list[Change], crm: str) -> None:
    """The batch's answer is recorded: it is no longer in flight."""
    if not changes:
        return
    conn.execute(
        f"delete from {OPS}.crm_sync_in_flight as flying using "
        "unnest(%(leads)s::text[], %(models)s::text[]) as landed (lead_id, scoring_model_id) "
        "where flying.crm = %(crm)s and flying.lead_id = landed.lead_id "
        "and flying.scoring_model_id = landed.scoring_model_id",
        {
            "crm": crm,
            "leads": [c.lead_id for c in changes],
            "models": [c.scoring_model_id for c in changes],
        },
    )


def _reconcile_in_flight(conn: psycopg.Connection[Any], target: Target, result: SyncResult) -> None:
    """Settle the batches an earlier run died with: read those leads back from the CRM and
    record as accepted every change the CRM already holds, so it is not sent twice. The others
    stay changes and are sent by this run."""
    rows = conn.execute(
        f"select lead_id, scoring_model_id, payload, payload_hash from {OPS}.crm_sync_in_flight "
        "where crm = %s order by lead_id, scoring_model_id",
        (target.name,),
    ).fetchall()
    conn.commit()
    if not rows:
        return
    flying = [Change(str(r[0]), str(r[1]), dict(r[2]), str(r[3])) for r in rows]
    log.warning(
        "%d changes were in flight when an earlier sync stopped: checking the CRM", len(rows)
    )
    names = sorted({name for c in flying for name in c.payload})
    leads = sorted({c.lead_id for c in flying})
    held = target.read_back(leads, names)
    applied = [
        c
        for c in flying
        if c.lead_id in held
        and all(
            (held[c.lead_id].get(name) or "") == value
            for name, value in c.payload.items()
            if not name.endswith(tuple(UNHASHED))
        )
    ]
    with conn.transaction():
        _record(conn, applied, "accepted", result)
        _land(conn, flying, result.crm)
    result.reconciled = len(applied)
    log.warning(
        "%d of them the CRM already holds (recorded, not sent again); %d will be sent",
        len(applied),
        len(flying) - len(applied),
    )


def _keep_dry_run(
    conn: psycopg.Connection[Any], changes: Iterable[Change], sync_run_id: str
) -> None:
    """What the dry run would send, into ``crm_sync_dry_run_changes`` (COPY), and a sample in
    the log."""
    kept = 0
    with (
        conn.transaction(),
        conn.cursor() as cursor,
        cursor.copy(
            f"copy {OPS}.crm_sync_dry_run_changes "
            "(sync_run_id, lead_id, scoring_model_id, payload, previous_payload) from stdin"
        ) as copy,
    ):
        for c in changes:
            previous = json.dumps(c.previous_payload) if c.previous_payload else None
            copy.write_row(
                (sync_run_id, c.lead_id, c.scoring_model_id, json.dumps(c.payload), previous)
            )
            if kept < 5:
                log.info("dry run: lead %s: %s -> %s", c.lead_id, c.previous_payload, c.payload)
            kept += 1
    log.info(
        "dry run: %d changes kept in %s.crm_sync_dry_run_changes (sync_run_id %s)",
        kept,
        OPS,
        sync_run_id,
    )


Batch = dict[str, list[Change]]  # lead id -> its changes (one per scoring model)


def _batches(changes: Iterable[Change], size: int) -> Iterator[Batch]:
    """Up to ``size`` leads per batch; a lead's changes go in one record of one batch."""
    pending: Batch = {}
    for change in changes:
        if change.lead_id not in pending and len(pending) == size:
            yield pending
            pending = {}
        pending.setdefault(change.lead_id, []).append(change)
    if pending:
        yield pending


def _records(pending: Batch) -> list[Record]:
    return [
        (lead_id, {k: v for c in changes for k, v in c.payload.items()})
        for lead_id, changes in pending.items()
    ]


def _flying(pending: Batch) -> list[Change]:
    return [c for changes in pending.values() for c in changes]


def _send_all(
    conn: psycopg.Connection[Any],
    target: Target,
    batches: Iterator[Batch],
    result: SyncResult,
    concurrency: int,
    total: int,
) -> None:
    """Send the batches, ``concurrency`` at a time. Threads only talk to the CRM: this thread
    writes each batch ahead before it leaves and records each answer as it comes back.

    When a batch fails for good (or the run is interrupted), nothing more is sent; batches not
    yet started are withdrawn, those already out are recorded as they answer, then the error
    is raised. A batch whose answer never gets recorded stays in flight for the next run."""
    running: dict[Future[Answer], Batch] = {}
    reported = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="crm-sync") as pool:
        try:
            for pending in batches:
                while len(running) >= concurrency:
                    _settle(conn, running, result, target.gone)
                if time.monotonic() - reported >= PROGRESS_SECONDS:
                    reported = time.monotonic()
                    log.info(
                        "sent %d of %d leads (%.0f%%): %d accepted, %d refused or missing",
                        result.sent,
                        total,
                        100 * result.sent / max(total, 1),
                        result.accepted,
                        result.failed + result.not_found,
                    )
                _write_ahead(conn, pending, result)
                running[pool.submit(target.write, _records(pending))] = pending
            while running:
                _settle(conn, running, result, target.gone)
        except BaseException:
            withdrawn = [f for f in running if f.cancel()]
            with conn.transaction():
                for future in withdrawn:
                    pending = running.pop(future)
                    result.sent -= len(pending)
                    _land(conn, _flying(pending), result.crm)
            wait(list(running))
            for future, pending in running.items():
                if future.exception() is None:
                    _record_answer(conn, pending, future.result(), result, target.gone)
            raise


def _settle(
    conn: psycopg.Connection[Any],
    running: dict[Future[Answer], Batch],
    result: SyncResult,
    gone: frozenset[str],
) -> None:
    """Wait for the next answers and record them; a batch that failed for good raises here."""
    done, _ = wait(list(running), return_when=FIRST_COMPLETED)
    for future in done:
        answer = future.result()
        _record_answer(conn, running.pop(future), answer, result, gone)


def _write_ahead(conn: psycopg.Connection[Any], pending: Batch, result: SyncResult) -> None:
    """Commit the batch's changes to ``crm_sync_in_flight`` before the request leaves."""
    result.sent += len(pending)
    with conn.transaction():
        conn.execute(
            f"""
            insert into {OPS}.crm_sync_in_flight
                (crm, lead_id, scoring_model_id, payload, payload_hash, sync_run_id, sent_at)
            select %(crm)s, lead_id, scoring_model_id, payload, payload_hash, %(run)s, now()
            from {CHANGES_TABLE}
            on conflict (crm, lead_id, scoring_model_id) do update set
                payload = excluded.payload,
                payload_hash = excluded.payload_hash,
                sync_run_id = excluded.sync_run_id,
                sent_at = excluded.sent_at
            """,
            {"crm": result.crm, "run": result.sync_run_id, **_as_arrays(_flying(pending))},
        )


def _record_answer(
    conn: psycopg.Connection[Any],
    pending: Batch,
    answer: Answer,
    result: SyncResult,
    gone: frozenset[str],
) -> None:
    """Record one batch's answer in the ledger and take it out of flight, in one commit."""
    failed = answer.refused
    result.split_batches += answer.splits
    accepted = [c for lead_id, changes in pending.items() if lead_id not in failed for c in changes]
    missing = [
        c
        for lead_id, changes in pending.items()
        if failed.get(lead_id, ("",))[0] in gone
        for c in changes
    ]
    refused = [
        (c, f"{category}: {message}")
        for lead_id, (category, message) in failed.items()
        if category not in gone
        for c in pending.get(lead_id, [])
    ]
    with conn.transaction():
        _record(conn, accepted, "accepted", result)
        _record(conn, missing, "not_found", result)
        gave_up = _record_refused(conn, refused, result)
        _land(conn, _flying(pending), result.crm)
    result.accepted += len(pending) - len(failed)
    for lead_id, (category, message) in failed.items():
        if category in gone:
            result.not_found += 1
            log.warning(
                "%s no longer has lead %s (%s: %s); recorded, not retried",
                result.crm,
                lead_id,
                category,
                message,
            )
        else:
            result.failed += 1
            result.failures[lead_id] = f"{category}: {message}"
            log.warning("%s refused lead %s (%s: %s)", result.crm, lead_id, category, message)
    for change, attempts in gave_up:
        result.gave_up += 1
        log.error(
            "gave up on lead %s, model %s after %d refusals in a row (last error in "
            "crm_sync_ledger.last_error); it is sent again when its score changes",
            change.lead_id,
            change.scoring_model_id,
            attempts,
        )


def _record_run(
    control: psycopg.Connection[Any], result: SyncResult, error: BaseException | None
) -> None:
    """The run's metrics row: what changed, was sent, accepted, failed, and what it cost."""
    control.execute(
        f"""
        update {OPS}.crm_sync_runs set
            status = %s, finished_at = now(), scores_considered = %s, changed = %s, sent = %s,
            accepted = %s, not_found = %s, failed = %s, requests = %s, retries = %s,
            rate_limited = %s, duration_seconds = %s, error = %s
        where sync_run_id = %s
        """,
        (
            "failed" if error else "skipped" if result.skipped else "succeeded",
            result.scores_considered,
            result.changed,
            result.sent,
            result.accepted,
            result.not_found,
            result.failed,
            result.requests,
            result.retries,
            result.rate_limited,
            round(result.seconds, 3),
            f"{type(error).__name__}: {error}"[:2000] if error else None,
            result.sync_run_id,
        ),
    )
