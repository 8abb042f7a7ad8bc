"""Connections to the PostgreSQL warehouse and the tables the Python side owns.

dbt owns the scoring schemas; this module owns the landing zone (``raw_crm``, ``raw_analytics``)
and the job's bookkeeping (``lead_scoring_ops``: load batches, the CRM sync ledger and runs).
All DDL is idempotent and runs at the start of each task that needs it, so a fresh warehouse
needs no migration step.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg.rows import TupleRow

from lead_scoring.config import WarehouseConfig
from lead_scoring.schemas import MARTS, OPS, RAW_ANALYTICS, RAW_CRM, RULES

log = logging.getLogger(__name__)

__all__ = ["MARTS", "OPS", "RAW_ANALYTICS", "RAW_CRM", "RULES", "connect", "ensure_landing_zone"]

DDL = f"""
create schema if not exists {RAW_CRM};
create schema if not exists {RAW_ANALYTICS};
create schema if not exists {OPS};

create table if not exists {OPS}.load_batches (
    batch_id uuid primary key,
    source text not null,
    run_id text,
    started_at timestamptz not null,
    finished_at timestamptz,
    status text not null check (status in ('running', 'committed', 'failed')),
    rows_read bigint not null default 0,
    rows_inserted bigint not null default 0,
    rows_duplicate bigint not null default 0,
    rows_quarantined bigint not null default 0,
    error text
);

-- One row per source: how far incremental extraction has got. Written in the same
-- transaction as the load it describes, so it never runs ahead of committed data.
create table if not exists {OPS}.extract_state (
    source text primary key,
    watermark timestamptz not null,
    batch_id uuid not null,
    updated_at timestamptz not null
);

-- Files an analytics load has read (path, size and modification stamp), so a run reads only
-- new or changed files, and a re-run of an interval reads the same ones again.
create table if not exists {OPS}.loaded_files (
    source text not null,
    path text not null,
    fingerprint text not null,
    batch_id uuid not null,
    loaded_at timestamptz not null,
    primary key (source, path)
);

create table if not exists {RAW_CRM}.contacts (
    contact_id text not null,
    updated_at timestamptz not null,
    properties jsonb not null,
    properties_hash text not null,
    archived boolean not null,
    raw jsonb not null,
    batch_id uuid not null,
    loaded_at timestamptz not null,
    primary key (contact_id, updated_at)
);

-- HubSpot's propertiesWithHistory: every value a contact property has had, and when. The
-- lifecycle stage's history is what the funnel and point-in-time scoring read.
create table if not exists {RAW_CRM}.contact_property_history (
    contact_id text not null,
    property text not null,
    value text not null,
    changed_at timestamptz not null,
    source_type text,
    raw jsonb not null,
    batch_id uuid not null,
    loaded_at timestamptz not null,
    primary key (contact_id, property, changed_at, value)
);

create table if not exists {RAW_CRM}.email_events (
    event_id text primary key,
    event_type text not null,
    recipient text,
    created_at timestamptz not null,
    raw jsonb not null,
    batch_id uuid not null,
    loaded_at timestamptz not null
);

create table if not exists {RAW_ANALYTICS}.web_events (
    message_id text primary key,
    event_type text not null,
    event_name text,
    anonymous_id text,
    user_id text,
    event_timestamp timestamptz not null,
    raw jsonb not null,
    source_file text not null,
    source_line integer not null,
    batch_id uuid not null,
    loaded_at timestamptz not null
);

-- Segment identify calls, also kept in web_events with every other call: identity stitching
-- reads this narrow table instead of scanning all web events on every run. Filled in the
-- same statement (and transaction) that merges a batch into web_events.
create table if not exists {RAW_ANALYTICS}.identifies (
    message_id text primary key,
    anonymous_id text,
    user_id text,
    email text,
    traits jsonb,
    event_timestamp timestamptz not null,
    batch_id uuid not null,
    loaded_at timestamptz not null
);
"""

# dbt reads the raw tables by load time (the incremental activity rollup, the data tests on
# recent loads) and by event time (the rollup recomputes whole days): an index each, so a run
# after a small load does not scan the whole history. (name, table, column)
INDEXES: tuple[tuple[str, str, str], ...] = (
    ("contacts_loaded_at", f"{RAW_CRM}.contacts", "loaded_at"),
    ("email_events_loaded_at", f"{RAW_CRM}.email_events", "loaded_at"),
    ("email_events_created_at", f"{RAW_CRM}.email_events", "created_at"),
    ("web_events_loaded_at", f"{RAW_ANALYTICS}.web_events", "loaded_at"),
    ("web_events_event_timestamp", f"{RAW_ANALYTICS}.web_events", "event_timestamp"),
    ("identifies_loaded_at", f"{RAW_ANALYTICS}.identifies", "loaded_at"),
    ("contact_property_history_loaded_at", f"{RAW_CRM}.contact_property_history", "loaded_at"),
)

# Fills identifies from the web events loaded before it existed (runs once, when it is created).
IDENTIFIES_BACKFILL = f"""
insert into {RAW_ANALYTICS}.identifies (
    message_id, anonymous_id, user_id, email, traits, event_timestamp, batch_id, loaded_at
)
select
    message_id, anonymous_id, user_id, lower(nullif(trim(raw -> 'traits' ->> 'email'), '')),
    raw -> 'traits', event_timestamp, batch_id, loaded_at
from {RAW_ANALYTICS}.web_events
where event_type = 'identify'
on conflict (message_id) do nothing
"""

# Raw tables whose rows carry the logical interval of the run that loaded them.
INTERVAL_TABLES = (
    f"{RAW_CRM}.contacts",
    f"{RAW_CRM}.contact_property_history",
    f"{RAW_CRM}.email_events",
    f"{RAW_ANALYTICS}.web_events",
    f"{RAW_ANALYTICS}.identifies",
    f"{RAW_CRM}.quarantine",
    f"{RAW_ANALYTICS}.quarantine",
)

QUARANTINE_DDL = """
create table if not exists {schema}.quarantine (
    quarantine_id bigserial primary key,
    source text not null,
    reason text not null,
    detail text,
    raw_payload text not null,
    payload_hash text not null,
    source_file text not null default '',
    source_line integer not null default 0,
    batch_id uuid not null,
    loaded_at timestamptz not null,
    unique (source, source_file, source_line, payload_hash)
);
"""


def connect(config: WarehouseConfig, *, autocommit: bool = False) -> psycopg.Connection[TupleRow]:
    """Open a connection; the error names the server (never the password) and the likely fix."""
    try:
        return psycopg.connect(config.conninfo(), autocommit=autocommit, connect_timeout=15)
    except psycopg.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConnectionError(
            f"cannot reach the warehouse ({config.describe()}): {first_line}. "
            "Check the 'warehouse' connection (AIRFLOW_CONN_WAREHOUSE) "
            "and that the server is running."
        ) from None


def ensure_landing_zone(conn: psycopg.Connection[TupleRow]) -> None:
    """Create the raw and ops schemas and tables if they are missing (idempotent)."""
    with conn.transaction():
        # A lock so two tasks creating the tables at once do not race on the catalog.
        conn.execute("select pg_advisory_xact_lock(hashtext('lead_scoring.ddl'))")
        had_identifies = conn.execute(
            "select to_regclass(%s) is not null", (f"{RAW_ANALYTICS}.identifies",)
        ).fetchone()
        conn.execute(DDL)
        _add_missing_indexes(conn)
        if had_identifies is not None and not had_identifies[0]:
            backfilled = conn.execute(IDENTIFIES_BACKFILL).rowcount
            if backfilled:
                log.info("identifies: %d identify calls copied from web_events", backfilled)
        for schema in (RAW_CRM, RAW_ANALYTICS):
            conn.execute(QUARANTINE_DDL.format(schema=schema))
        _add_missing_columns(conn)


# Columns added after the first release: (table, column, type). A warehouse created earlier
# gains them in place. Only missing ones are added: ALTER TABLE takes an exclusive lock even
# when there is nothing to do, which would make parallel loads wait for each other.
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    (f"{OPS}.load_batches", "interval_start", "timestamptz"),
    (f"{OPS}.load_batches", "interval_end", "timestamptz"),
    (f"{OPS}.load_batches", "window_start", "timestamptz"),
    (f"{OPS}.load_batches", "window_end", "timestamptz"),
    (f"{OPS}.load_batches", "mode", "text"),
    (f"{OPS}.load_batches", "replaced_by", "uuid"),
    (f"{OPS}.load_batches", "rows_replaced", "bigint not null default 0"),
    (f"{RAW_ANALYTICS}.web_events", "source_format", "text not null default 'segment'"),
    *(
        (table, column, "timestamptz")
        for table in INTERVAL_TABLES
        for column in ("interval_start", "interval_end")
    ),
)


def _add_missing_columns(conn: psycopg.Connection[TupleRow]) -> None:
    present = {
        (f"{schema}.{table}", column)
        for schema, table, column in conn.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where table_schema = any(%s)",
            ([RAW_CRM, RAW_ANALYTICS, OPS],),
        )
    }
    for table, column, type_ in ADDED_COLUMNS:
        if (table, column) not in present:
            conn.execute(f"alter table {table} add column {column} {type_}")


def _add_missing_indexes(conn: psycopg.Connection[TupleRow]) -> None:
    """Only missing ones: ``create index if not exists`` still waits for running loads."""
    present = {
        row[0]
        for row in conn.execute(
            "select indexname from pg_indexes where schemaname = any(%s)",
            ([RAW_CRM, RAW_ANALYTICS],),
        )
    }
    for name, table, column in INDEXES:
        if name not in present:
            log.info("indexing %s (%s), once", table, column)
            conn.execute(f"create index if not exists {name} on {table} ({column})")
