"""Reverse-ETL: write changed scores back to HubSpot contacts.

Only leads whose payload changed since the CRM last accepted it are sent. The sync ledger
(``lead_scoring_ops.crm_sync_ledger``) holds, per lead and scoring model, the hash of the payload
the CRM accepted; it is updated in the same transaction as each batch's outcome is recorded.
Before a batch leaves, its changes are committed to ``crm_sync_in_flight`` (write-ahead) and the
same transaction that records the answer removes them. A run killed with a batch in flight
leaves those rows; the next run reads those contacts back from the CRM (batch read) and records
as accepted what the CRM already holds, so a change is sent once even across a crash, and what
the CRM never got is sent by that run.

Per-record failures in a 207 answer are handled one by one: a contact HubSpot no longer has
(deleted or merged, ``OBJECT_NOT_FOUND``) is recorded as ``not_found`` and not retried forever.
A batch HubSpot refuses whole (400, a bad value in one record) is split until the bad records
stand alone. A refused record is ``failing`` in the ledger (attempts, last error) and tried again
by the next runs; after ``max_attempts`` refusals in a row of the same payload it is ``gave_up``
until its payload changes. What the CRM accepted before is kept beside the failure.

Before anything is sent the changes are counted: a run above ``max_changes`` fails with nothing
sent unless approved; a dry run keeps what it would send in ``crm_sync_dry_run_changes``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from lead_scoring.config import WarehouseConfig
from lead_scoring.crm.client import BATCH_MAX, HubSpotClient, HubSpotError
from lead_scoring.warehouse import MARTS, OPS, RULES, connect, ensure_landing_zone

log = logging.getLogger(__name__)
BANDS = ("cold", "warm", "hot")

SYNC_DDL = f"""
-- Per lead and model: the payload the CRM last accepted (null if it never accepted one), and
-- for a payload the CRM keeps refusing, how often in a row, its hash and the last error.
create table if not exists {OPS}.crm_sync_ledger (
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
    primary key (lead_id, scoring_model_id),
    constraint crm_sync_ledger_status_check
        check (status in ('accepted', 'not_found', 'failing', 'gave_up'))
);

create table if not exists {OPS}.crm_sync_runs (
    sync_run_id uuid primary key,
    dag_run_id text,
    as_of_date date not null,
    dry_run boolean not null,
    status text not null check (status in ('running', 'succeeded', 'failed')),
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
    lead_id text not null,
    scoring_model_id text not null,
    payload jsonb not null,
    payload_hash text not null,
    sync_run_id uuid not null,
    sent_at timestamptz not null,
    primary key (lead_id, scoring_model_id)
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

DEFAULT_MAX_CHANGES = 50_000
DEFAULT_MAX_ATTEMPTS = 5


class TooManyChanges(RuntimeError):
    """More changes than a run may send without approval: a wrong rule or a broken mart can
    flip thousands of CRM records at once. Nothing was sent."""


def _env_int(name: str, default: int, minimum: int) -> int:
    from lead_scoring.config import ConfigError

    raw = os.environ.get(name) or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be {minimum} or more, got {value}")
    return value


def max_changes_from_env() -> int:
    """``LEAD_SCORING_SYNC_MAX_CHANGES`` (default 50,000; 0 = no limit)."""
    return _env_int("LEAD_SCORING_SYNC_MAX_CHANGES", DEFAULT_MAX_CHANGES, 0)


def max_attempts_from_env() -> int:
    """``LEAD_SCORING_SYNC_MAX_ATTEMPTS`` (default 5): runs in a row the CRM may refuse the same
    payload of a contact before the sync gives up on it (until the payload changes)."""
    return _env_int("LEAD_SCORING_SYNC_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, 1)


GRADES = ("A", "B", "C", "D")
GROUP = "contactinformation"
NOTE = "Written by the lead-scoring warehouse job; do not edit by hand."

# One set per scoring model, each name prefixed with the model's ``crm_property_prefix``
# (scoring_models.csv): suffix -> (label, type, fieldType, options).
PROPERTIES: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "score": ("Lead score", "number", "number", ()),
    "band": ("Lead band", "enumeration", "select", BANDS),
    "fit_grade": ("Fit grade", "enumeration", "select", GRADES),
    "mql": ("Marketing qualified", "bool", "booleancheckbox", ("true", "false")),
    "mql_date": ("Marketing qualified on", "date", "date", ()),
    "sql": ("Sales qualified", "bool", "booleancheckbox", ("true", "false")),
    "sql_date": ("Sales qualified on", "date", "date", ()),
    "top_reasons": ("Score reasons", "string", "textarea", ()),
    "ruleset_version": ("Scoring ruleset version", "string", "text", ()),
    "scored_at": ("Scored at", "datetime", "date", ()),
}
# Not part of the change test: a new scoring time alone is not a change worth a CRM write.
UNHASHED = ("scored_at",)


def property_definitions(prefix: str) -> list[dict[str, Any]]:
    """The custom contact properties one scoring model writes to."""
    definitions = []
    for suffix, (label, type_, field_type, options) in PROPERTIES.items():
        definition: dict[str, Any] = {
            "name": f"{prefix}_{suffix}",
            "label": f"{label} ({prefix})",
            "type": type_,
            "fieldType": field_type,
            "groupName": GROUP,
            "description": NOTE,
        }
        if options:
            definition["options"] = [
                {"label": o.title(), "value": o, "displayOrder": i, "hidden": False}
                for i, o in enumerate(options)
            ]
        definitions.append(definition)
    return definitions


def crm_payload(prefix: str, score: dict[str, Any]) -> dict[str, str]:
    """A score row as the CRM's property values (strings; ``""`` clears a value)."""

    def text(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, datetime):
            return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if isinstance(value, date):
            return value.isoformat()
        return str(value)

    values = {
        "score": score["total_score"],
        "band": score["band"],
        "fit_grade": score["fit_grade"],
        "mql": bool(score["is_mql"]),
        "mql_date": score["mql_date"],
        "sql": bool(score["is_sql"]),
        "sql_date": score["sql_date"],
        "top_reasons": score["top_reasons"],
        "ruleset_version": score["ruleset_version"],
        "scored_at": score["scored_at"],
    }
    return {f"{prefix}_{suffix}": text(value) for suffix, value in values.items()}


def ensure_properties(client: HubSpotClient, prefixes: list[str]) -> list[str]:
    """Create missing score properties (get, create on 404, accept 409); returns those created."""
    created = []
    for prefix in prefixes:
        for definition in property_definitions(prefix):
            if client.get_contact_property(
                definition["name"]
            ) is None and client.create_contact_property(definition):
                created.append(definition["name"])
    if created:
        log.info("created CRM properties: %s", ", ".join(created))
    return created


@dataclass(frozen=True)
class Change:
    lead_id: str
    scoring_model_id: str
    payload: dict[str, str]
    payload_hash: str
    previous_payload: dict[str, str] | None = None


@dataclass
class SyncResult:
    sync_run_id: str
    as_of: date
    dry_run: bool
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

    def summary(self) -> str:
        mode = "dry run: would send" if self.dry_run else "sent"
        return (
            f"CRM sync for {self.as_of}: {self.scores_considered} scores, {self.changed} changed, "
            f"{mode} {self.sent} ({self.accepted} accepted, {self.not_found} not found, "
            f"{self.failed} failed, {self.gave_up} given up) in {self.requests} requests "
            f"({self.retries} retries, {self.split_batches} refused batches split, "
            f"{self.rate_limited} rate-limited) in {self.seconds:.1f}s"
        )


def payload_hash(payload: dict[str, str]) -> str:
    """What decides whether the CRM needs a write: every value but the scoring time."""
    kept = {k: v for k, v in payload.items() if not k.endswith(UNHASHED)}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def _changes(conn: psycopg.Connection[Any], as_of: date) -> Iterator[Change | None]:
    """Every score of the as-of date: the change to send, or None when the CRM already has it."""
    query = f"""
        select
            scores.lead_id,
            scores.scoring_model_id,
            scores.total_score,
            scores.band,
            scores.fit_grade,
            scores.is_mql,
            scores.mql_date,
            scores.is_sql,
            scores.sql_date,
            scores.top_reasons,
            scores.ruleset_version,
            scores.scored_at,
            models.crm_property_prefix,
            ledger.payload_hash,
            ledger.status,
            ledger.payload,
            ledger.failed_payload_hash
        from {MARTS}.fct_lead_scores as scores
        inner join {RULES}.scoring_models as models
            on scores.scoring_model_id = models.scoring_model_id
        left join {OPS}.crm_sync_ledger as ledger
            on scores.lead_id = ledger.lead_id and scores.scoring_model_id = ledger.scoring_model_id
        where scores.as_of_date = %s
        order by scores.lead_id, scores.scoring_model_id
    """
    with conn.cursor(name="sync_scores") as cursor:
        cursor.itersize = 5000
        cursor.execute(query, (as_of,))
        names = [column.name for column in cursor.description or []]
        for values in cursor:
            row = dict(zip(names, values, strict=True))
            lead_id, model_id = row["lead_id"], row["scoring_model_id"]
            last_hash, last_status = row["payload_hash"], row["status"]
            last, refused = row["payload"], row["failed_payload_hash"]
            payload = crm_payload(str(row["crm_property_prefix"]), row)
            digest = payload_hash(payload)
            if (
                last_status == "not_found"
                or digest == last_hash
                or (last_status == "gave_up" and digest == refused)
            ):
                yield None
            else:
                yield Change(str(lead_id), str(model_id), payload, digest, last)


def _record(
    conn: psycopg.Connection[Any], changes: list[Change], status: str, sync_run_id: str
) -> None:
    if not changes:
        return
    with conn.cursor() as cursor:
        cursor.executemany(
            f"""
            insert into {OPS}.crm_sync_ledger
                (lead_id, scoring_model_id, payload, payload_hash, status, synced_at, sync_run_id)
            values (%s, %s, %s, %s, %s, now(), %s)
            on conflict (lead_id, scoring_model_id) do update set
                payload = excluded.payload,
                payload_hash = excluded.payload_hash,
                status = excluded.status,
                synced_at = excluded.synced_at,
                sync_run_id = excluded.sync_run_id,
                attempts = 0,
                failed_payload_hash = null,
                last_error = null
            """,
            [
                (
                    c.lead_id,
                    c.scoring_model_id,
                    json.dumps(c.payload),
                    c.payload_hash,
                    status,
                    sync_run_id,
                )
                for c in changes
            ],
        )


def sync_scores(
    warehouse: WarehouseConfig,
    client: HubSpotClient,
    as_of: date,
    *,
    dag_run_id: str | None = None,
    dry_run: bool = False,
    max_changes: int = DEFAULT_MAX_CHANGES,
    approve_changes: bool = False,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> SyncResult:
    """Send the as-of date's changed scores to the CRM, in batches of at most 100 contacts.

    The changes are counted before anything is sent: above ``max_changes`` (0 = no limit) the
    run raises ``TooManyChanges`` and sends nothing, unless ``approve_changes``. A dry run
    writes what it would send to ``crm_sync_dry_run_changes`` (with what the CRM holds now)."""
    result = SyncResult(
        sync_run_id=str(uuid.uuid4()), as_of=as_of, dry_run=dry_run, max_attempts=max_attempts
    )
    started = time.monotonic()
    baseline = (client.stats.requests, client.stats.retries, client.stats.statuses[429])

    def measure() -> None:
        result.seconds = time.monotonic() - started
        result.requests = client.stats.requests - baseline[0]
        result.retries = client.stats.retries - baseline[1]
        result.rate_limited = client.stats.statuses[429] - baseline[2]

    with connect(warehouse, autocommit=True) as control:
        ensure_landing_zone(control)
        control.execute(SYNC_DDL)
        if not control.execute(
            "select 1 from information_schema.columns where table_schema = %s "
            "and table_name = 'crm_sync_ledger' and column_name = 'attempts'",
            (OPS,),
        ).fetchone():
            control.execute(LEDGER_MIGRATION)
        control.execute(
            f"insert into {OPS}.crm_sync_runs "
            "(sync_run_id, dag_run_id, as_of_date, dry_run, status) "
            "values (%s, %s, %s, %s, 'running')",
            (result.sync_run_id, dag_run_id, as_of, dry_run),
        )
        try:
            with connect(warehouse) as reader, connect(warehouse) as writer:
                prefixes = [
                    str(row[0])
                    for row in reader.execute(
                        f"select crm_property_prefix from {RULES}.scoring_models"
                    )
                ]
                if not dry_run:
                    _reconcile_in_flight(writer, client, result)
                changes: list[Change] = []
                for change in _changes(reader, as_of):
                    result.scores_considered += 1
                    if change is not None:
                        changes.append(change)
                result.changed = len(changes)
                if dry_run:
                    _keep_dry_run(writer, changes, result.sync_run_id)
                elif max_changes and len(changes) > max_changes:
                    if not approve_changes:
                        raise TooManyChanges(
                            f"{len(changes):,} scores changed, more than the "
                            f"{max_changes:,} a run may send without approval "
                            "(LEAD_SCORING_SYNC_MAX_CHANGES); nothing was sent. Check the "
                            "ruleset and the scores, then re-run with approve_large_sync"
                        )
                    log.warning(
                        "%d changes, above the limit of %d: approved for this run",
                        len(changes),
                        max_changes,
                    )
                if not dry_run:
                    ensure_properties(client, prefixes)
                pending: dict[str, list[Change]] = {}
                for change in changes:
                    # A contact's changes (one per scoring model) go in one input of one batch.
                    if change.lead_id not in pending and len(pending) == BATCH_MAX:
                        _send(writer, client, pending, result)
                        pending = {}
                    pending.setdefault(change.lead_id, []).append(change)
                if pending:
                    _send(writer, client, pending, result)
        except BaseException as exc:
            measure()
            _record_run(control, result, exc)
            raise
        measure()
        _record_run(control, result, None)
    log.info("%s", result.summary())
    return result


def _record_refused(
    conn: psycopg.Connection[Any],
    refused: list[tuple[Change, str]],
    sync_run_id: str,
    max_attempts: int,
) -> list[tuple[Change, int]]:
    """Count a refusal of each change's payload (in a row, for the same payload); at
    ``max_attempts`` the lead and model are given up on until their payload changes. What the
    CRM accepted before is kept. Returns the changes given up on now, with their attempts."""
    gave_up: list[tuple[Change, int]] = []
    for change, error in refused:
        row = conn.execute(
            f"""
            insert into {OPS}.crm_sync_ledger as ledger (
                lead_id, scoring_model_id, status, synced_at, sync_run_id,
                attempts, failed_payload_hash, last_error
            )
            values (%(lead)s, %(model)s, %(status)s, now(), %(run)s, 1, %(hash)s, %(error)s)
            on conflict (lead_id, scoring_model_id) do update set
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
                "lead": change.lead_id,
                "model": change.scoring_model_id,
                "status": "gave_up" if max_attempts <= 1 else "failing",
                "run": sync_run_id,
                "hash": change.payload_hash,
                "error": error[:2000],
                "max": max_attempts,
            },
        ).fetchone()
        if row and row[0] == "gave_up":
            gave_up.append((change, int(row[1])))
    return gave_up


def _land(conn: psycopg.Connection[Any], changes: list[Change]) -> None:
    """The batch's answer is recorded: it is no longer in flight."""
    conn.cursor().executemany(
        f"delete from {OPS}.crm_sync_in_flight where lead_id = %s and scoring_model_id = %s",
        [(c.lead_id, c.scoring_model_id) for c in changes],
    )


def _reconcile_in_flight(
    conn: psycopg.Connection[Any], client: HubSpotClient, result: SyncResult
) -> None:
    """Settle the batches an earlier run died with: read those contacts back from the CRM
    (batch read, 100 at a time) and record as accepted every change the CRM already holds, so
    it is not sent twice. The others stay changes and are sent by this run."""
    rows = conn.execute(
        f"select lead_id, scoring_model_id, payload, payload_hash from {OPS}.crm_sync_in_flight "
        "order by lead_id, scoring_model_id"
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
    held: dict[str, dict[str, Any]] = {}
    for start in range(0, len(leads), BATCH_MAX):
        answer = client.batch_read_contacts(leads[start : start + BATCH_MAX], names)
        for record in answer.results:
            held[str(record["id"])] = record.get("properties") or {}
    applied = [
        c
        for c in flying
        if c.lead_id in held
        and all(
            (held[c.lead_id].get(name) or "") == value
            for name, value in c.payload.items()
            if not name.endswith(UNHASHED)
        )
    ]
    with conn.transaction():
        _record(conn, applied, "accepted", result.sync_run_id)
        _land(conn, flying)
    result.reconciled = len(applied)
    log.warning(
        "%d of them the CRM already holds (recorded, not sent again); %d will be sent",
        len(applied),
        len(flying) - len(applied),
    )


def _update_isolating(
    client: HubSpotClient, inputs: list[dict[str, Any]], result: SyncResult
) -> dict[str, tuple[str, str]]:
    """Batch-update ``inputs``; returns the refused ids with (category, message).

    HubSpot refuses a whole batch (400) when one record carries a bad value. The batch is then
    split in halves until the bad records stand alone, so one bad record cannot hold back the
    other 99 (each split costs one request more)."""
    try:
        answer = client.batch_update_contacts(inputs)
    except HubSpotError as exc:
        if exc.status != 400:
            raise
        if len(inputs) == 1:
            return {str(inputs[0]["id"]): (exc.category or "VALIDATION_ERROR", str(exc))}
        result.split_batches += 1
        middle = len(inputs) // 2
        return {
            **_update_isolating(client, inputs[:middle], result),
            **_update_isolating(client, inputs[middle:], result),
        }
    refused: dict[str, tuple[str, str]] = {}
    for error in answer.errors:
        category = str(error.get("category", "ERROR"))
        message = str(error.get("message", category))
        for record_id in (error.get("context") or {}).get("ids", []):
            refused[str(record_id)] = (category, message)
    return refused


def _keep_dry_run(conn: psycopg.Connection[Any], changes: list[Change], sync_run_id: str) -> None:
    """What the dry run would send, into ``crm_sync_dry_run_changes`` (COPY), and a sample in
    the log."""
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
    for c in changes[:5]:
        log.info("dry run: lead %s: %s -> %s", c.lead_id, c.previous_payload, c.payload)
    log.info(
        "dry run: %d changes kept in %s.crm_sync_dry_run_changes (sync_run_id %s)",
        len(changes),
        OPS,
        sync_run_id,
    )


def _send(
    conn: psycopg.Connection[Any],
    client: HubSpotClient,
    pending: dict[str, list[Change]],
    result: SyncResult,
) -> None:
    """One batch update: record accepted and not-found records in the ledger, in one commit."""
    inputs = [
        {"id": lead_id, "properties": {k: v for c in changes for k, v in c.payload.items()}}
        for lead_id, changes in pending.items()
    ]
    result.sent += len(inputs)
    if result.dry_run:
        return
    flying = [c for changes in pending.values() for c in changes]
    with conn.transaction():
        conn.cursor().executemany(
            f"insert into {OPS}.crm_sync_in_flight "
            "(lead_id, scoring_model_id, payload, payload_hash, sync_run_id, sent_at) "
            "values (%s, %s, %s, %s, %s, now()) "
            "on conflict (lead_id, scoring_model_id) do update set payload = excluded.payload, "
            "payload_hash = excluded.payload_hash, sync_run_id = excluded.sync_run_id, "
            "sent_at = excluded.sent_at",
            [
                (c.lead_id, c.scoring_model_id, json.dumps(c.payload), c.payload_hash,
                 result.sync_run_id)
                for c in flying
            ],
        )  # fmt: skip
    failed = _update_isolating(client, inputs, result)
    accepted = [c for lead_id, changes in pending.items() if lead_id not in failed for c in changes]
    missing = [
        c
        for lead_id, changes in pending.items()
        if failed.get(lead_id, ("",))[0] == "OBJECT_NOT_FOUND"
        for c in changes
    ]
    refused = [
        (c, f"{category}: {message}")
        for lead_id, (category, message) in failed.items()
        if category != "OBJECT_NOT_FOUND"
        for c in pending.get(lead_id, [])
    ]
    with conn.transaction():
        _record(conn, accepted, "accepted", result.sync_run_id)
        _record(conn, missing, "not_found", result.sync_run_id)
        gave_up = _record_refused(conn, refused, result.sync_run_id, result.max_attempts)
        _land(conn, flying)
    result.accepted += len(inputs) - len(failed)
    for lead_id, (category, message) in failed.items():
        if category == "OBJECT_NOT_FOUND":
            result.not_found += 1
            log.warning("CRM has no contact %s (deleted or merged); recorded, not retried", lead_id)
        else:
            result.failed += 1
            result.failures[lead_id] = f"{category}: {message}"
            log.warning("CRM refused contact %s (%s: %s)", lead_id, category, message)
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
            "failed" if error else "succeeded",
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
