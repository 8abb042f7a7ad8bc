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

log = logging.getLogger(__name__)

RAW_CRM = "raw_crm"
RAW_ANALYTICS = "raw_analytics"
OPS = "lead_scoring_ops"
MARTS = "lead_scoring_marts"
RULES = "lead_scoring_rules"  # the dbt seeds

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
"""

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
        conn.execute(DDL)
        for schema in (RAW_CRM, RAW_ANALYTICS):
            conn.execute(QUARANTINE_DDL.format(schema=schema))
