"""What a gate looks at: views in ``lead_scoring_quality`` over exactly the rows of one run.

The committed suites validate whole-table batches of these views. Before each checkpoint the
gate re-creates the views with the run's own values written in as literals (batch ids and load
stamps of this run's loads, the as-of date, the previous scored date), so:

- the raw gate judges the rows this run's extraction added, not the whole history, and finds
  them through the ``loaded_at`` index (a literal list, which the planner can use; a parameter
  or a sub-select would cost a scan of millions of rows on every expectation);
- the score gate judges one as-of date and compares it with the previous run's date.

The views stay in place after the gate, so an operator can query what the gate saw. Runs are
serialised by the DAG (``max_active_runs=1``); two gates of the same kind run by hand at once
would replace each other's views.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from lead_scoring.config import ConfigError, WarehouseConfig
from lead_scoring.warehouse import (
    MARTS,
    OPS,
    RAW_ANALYTICS,
    RAW_CRM,
    RULES,
    connect,
    ensure_landing_zone,
)

QUALITY = "lead_scoring_quality"

GATE_RUNS_DDL = f"""
create schema if not exists {QUALITY};
create schema if not exists {OPS};
create table if not exists {OPS}.quality_gate_runs (
    gate_run_id bigserial primary key,
    checkpoint text not null,
    run_id text,
    as_of_date date,
    baseline_as_of_date date,
    passed boolean not null,
    approved boolean not null default false,
    evaluated integer not null,
    failures jsonb not null,
    warnings jsonb not null,
    data_docs text,
    checked_at timestamptz not null default now()
);
"""


@dataclass(frozen=True)
class RawScope:
    """The loads a raw gate judges: batch ids and their load stamps."""

    run_id: str | None
    batch_ids: list[str] = field(default_factory=list)
    loaded_at: list[datetime] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


def ensure_quality_schema(conn: psycopg.Connection[TupleRow]) -> None:
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('lead_scoring.ddl'))")
        conn.execute(GATE_RUNS_DDL)


def raw_scope(conn: psycopg.Connection[TupleRow], run_id: str | None) -> RawScope:
    """The committed loads of ``run_id``; without one, the newest committed load per source."""
    if run_id:
        rows = conn.execute(
            f"select batch_id::text, started_at, source from {OPS}.load_batches "
            "where run_id = %s and status = 'committed' order by started_at",
            (run_id,),
        ).fetchall()
    else:
        rows = conn.execute(
            f"select distinct on (source) batch_id::text, started_at, source "
            f"from {OPS}.load_batches where status = 'committed' "
            "order by source, started_at desc"
        ).fetchall()
    return RawScope(
        run_id=run_id,
        batch_ids=[r[0] for r in rows],
        loaded_at=[r[1] for r in rows],
        sources=sorted({r[2] for r in rows}),
    )


def _in_run(scope: RawScope) -> sql.Composable:
    """``loaded_at`` (indexed) and ``batch_id`` of the run's loads, as literals."""
    if not scope.batch_ids:
        return sql.SQL("false")
    return sql.SQL(
        "loaded_at = any({stamps}::timestamptz[]) and batch_id = any({ids}::uuid[])"
    ).format(stamps=sql.Literal(scope.loaded_at), ids=sql.Literal(scope.batch_ids))


def _replace_views(
    conn: psycopg.Connection[TupleRow], views: dict[str, sql.SQL], names: dict[str, Any]
) -> None:
    """Drop and create each view in one transaction (``create or replace`` cannot change a
    view's columns, and a mart may have gained one since the last run)."""
    with conn.transaction():
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(QUALITY)))
        for name, body in views.items():
            view = sql.Identifier(QUALITY, name)
            conn.execute(sql.SQL("drop view if exists {}").format(view))
            conn.execute(sql.SQL("create view {} as ").format(view) + body.format(**names))


def create_raw_views(
    conn: psycopg.Connection[TupleRow], scope: RawScope, reference: datetime
) -> None:
    """(Re)create the raw gate's views. ``reference`` is the end of the run's data interval:
    how fresh the newest event must be is measured from it (a backfill is not stale)."""
    views: dict[str, sql.SQL] = {
        "raw_contacts": sql.SQL(
            "select contact_id, properties ->> 'email' as email, "
            "properties ->> 'lifecyclestage' as lifecycle_stage, updated_at, batch_id "
            "from {raw_crm}.contacts where {in_run}"
        ),
        "raw_email_events": sql.SQL(
            "select event_id, event_type, created_at, "
            "extract(epoch from now() - created_at) / 86400.0 as event_age_days, batch_id "
            "from {raw_crm}.email_events where {in_run}"
        ),
        "raw_web_events": sql.SQL(
            "select message_id, event_type, event_timestamp, "
            "extract(epoch from now() - event_timestamp) / 86400.0 as event_age_days, batch_id "
            "from {raw_analytics}.web_events where {in_run}"
        ),
        "raw_loads": sql.SQL(
            "select source, batch_id, rows_read, rows_quarantined, "
            "case when rows_read > 0 then rows_quarantined::numeric / rows_read else 0 end "
            "as quarantine_share "
            "from {ops}.load_batches where batch_id = any({ids}::uuid[])"
        ),
        "raw_freshness": sql.SQL(
            "select newest_web_event_at, "
            "extract(epoch from {reference}::timestamptz - newest_web_event_at) / 3600.0 "
            "as hours_since_newest_web_event, "
            "newest_email_event_at, "
            "extract(epoch from {reference}::timestamptz - newest_email_event_at) / 3600.0 "
            "as hours_since_newest_email_event "
            "from (select "
            "(select max(event_timestamp) from {raw_analytics}.web_events) as newest_web_event_at,"
            " (select max(created_at) from {raw_crm}.email_events) as newest_email_event_at"
            ") as newest"
        ),
    }
    names = {
        "raw_crm": sql.Identifier(RAW_CRM),
        "raw_analytics": sql.Identifier(RAW_ANALYTICS),
        "ops": sql.Identifier(OPS),
        "in_run": _in_run(scope),
        "ids": sql.Literal(scope.batch_ids),
        "reference": sql.Literal(reference),
    }
    _replace_views(conn, views, names)


def baseline_as_of(conn: psycopg.Connection[TupleRow], as_of: date) -> date | None:
    """The as-of date of the newest run before ``as_of`` whose score gate passed (or was
    approved): what the CRM was last given. The drift guard compares with it."""
    row = conn.execute(
        f"select max(as_of_date) from {OPS}.quality_gate_runs "
        "where checkpoint = 'score_gate' and (passed or approved) and as_of_date < %s",
        (as_of,),
    ).fetchone()
    return row[0] if row else None


def ledger_baseline(conn: psycopg.Connection[TupleRow], crm: str) -> bool:
    """Whether the CRM was ever sent scores (the sync ledger holds a payload for it): with no
    earlier day to compare with, the drift guard compares with what the CRM was last sent, so
    a rules change on a warehouse's first day is held back like any other."""
    found = conn.execute(
        "select to_regclass(%s) is not null and to_regclass(%s) is not null",
        (f"{OPS}.crm_sync_ledger", f"{RULES}.scoring_models"),
    ).fetchone()
    if not (found and found[0]):
        return False
    row = conn.execute(
        f"select exists (select 1 from {OPS}.crm_sync_ledger "
        "where crm = %s and payload is not null)",
        (crm,),
    ).fetchone()
    return bool(row and row[0])


def create_score_views(
    conn: psycopg.Connection[TupleRow],
    as_of: date,
    baseline: date | None,
    *,
    ledger_crm: str | None = None,
    full: bool = False,
) -> None:
    """(Re)create the score gate's views for ``as_of``: ``scores`` (every score as of the
    date, for the checks of the whole set), ``changed_scores`` (the versions the date's build
    opened, for the checks row by row; every score when ``full``) and ``score_drift``. The
    drift view compares with the scores of the ``baseline`` day; without one, with what the
    sync ledger says ``ledger_crm`` was last sent; without either (a first run) it is empty."""
    if baseline is not None:
        # the versions that were current on the baseline day
        baseline_scores = sql.SQL(
            "select lead_id, scoring_model_id, band, is_mql "
            "from {marts}.lead_score_history "
            "where dbt_valid_from <= ({baseline}::date + 1)::timestamp "
            "and (dbt_valid_to is null or dbt_valid_to > ({baseline}::date + 1)::timestamp)"
        )
    elif ledger_crm is not None:
        # band and MQL flag as the CRM holds them: <prefix>_band, <prefix>_mql
        baseline_scores = sql.SQL(
            "select ledger.lead_id, ledger.scoring_model_id, "
            "ledger.payload ->> (models.crm_property_prefix || '_band') as band, "
            "(ledger.payload ->> (models.crm_property_prefix || '_mql')) = 'true' as is_mql "
            "from {ops}.crm_sync_ledger as ledger "
            "join {rules}.scoring_models as models using (scoring_model_id) "
            "where ledger.crm = {crm} and ledger.payload is not null"
        )
    else:
        baseline_scores = sql.SQL(
            "select lead_id, scoring_model_id, band, is_mql "
            "from {marts}.fct_lead_scores where false"
        )
    names: dict[str, Any] = {
        "marts": sql.Identifier(MARTS),
        "ops": sql.Identifier(OPS),
        "rules": sql.Identifier(RULES),
        "crm": sql.Literal(ledger_crm),
        "as_of": sql.Literal(as_of),
        "baseline": sql.Literal(baseline),
        "has_baseline": sql.SQL("true" if baseline or ledger_crm else "false"),
    }
    names["baseline_scores"] = baseline_scores.format(**names)
    # The scores as of the date: the versions current then (after the build of the newest
    # date, the current scores), and none when no build scored that date.
    scores = sql.SQL(
        "select * from {marts}.lead_score_history "
        "where dbt_valid_from <= ({as_of}::date + 1)::timestamp "
        "and (dbt_valid_to is null or dbt_valid_to > ({as_of}::date + 1)::timestamp) "
        "and exists (select from {marts}.fct_lead_score_summary where as_of_date = {as_of}::date)"
    )
    drift = sql.SQL(
        """
        with current_scores as (
            select lead_id, scoring_model_id, band, is_mql from ({scores}) as scores
        ),
        baseline_scores as (
            {baseline_scores}
        ),
        paired as (
            select
                coalesce(c.scoring_model_id, b.scoring_model_id) as scoring_model_id,
                c.lead_id is not null as is_current,
                b.lead_id is not null as is_baseline,
                c.band = 'hot' as is_hot, b.band = 'hot' as was_hot,
                c.is_mql, b.is_mql as was_mql,
                c.band is distinct from b.band and c.lead_id is not null
                    and b.lead_id is not null as changed_band
            from current_scores as c
            full outer join baseline_scores as b
                on c.lead_id = b.lead_id and c.scoring_model_id = b.scoring_model_id
        ),
        by_model as (
            select
                scoring_model_id,
                count(*) filter (where is_current) as leads,
                count(*) filter (where is_baseline) as baseline_leads,
                avg(is_hot::int) filter (where is_current) as hot_share,
                avg(was_hot::int) filter (where is_baseline) as baseline_hot_share,
                avg(is_mql::int) filter (where is_current) as mql_rate,
                avg(was_mql::int) filter (where is_baseline) as baseline_mql_rate,
                count(*) filter (where changed_band) as band_changes
            from paired
            group by scoring_model_id
        )
        select
            scoring_model_id,
            {as_of}::date as as_of_date,
            {baseline}::date as baseline_as_of_date,
            leads,
            baseline_leads,
            round(hot_share, 4) as hot_share,
            round(baseline_hot_share, 4) as baseline_hot_share,
            round(abs(coalesce(hot_share, 0) - coalesce(baseline_hot_share, 0)), 4)
                as hot_share_shift,
            round(mql_rate, 4) as mql_rate,
            round(baseline_mql_rate, 4) as baseline_mql_rate,
            round(abs(coalesce(mql_rate, 0) - coalesce(baseline_mql_rate, 0)), 4)
                as mql_rate_shift,
            band_changes,
            round(band_changes::numeric / greatest(leads, 1), 4) as band_change_share
        from by_model
        where {has_baseline}
        """
    )
    # A score the date's build did not change was checked when it was written.
    changed = sql.SQL(
        "select * from ({scores}) as scores where {full} or scores.as_of_date = {as_of}::date"
    )
    names["full"] = sql.SQL("true" if full else "false")
    names["scores"] = scores.format(**names)
    _replace_views(conn, {"scores": scores, "changed_scores": changed, "score_drift": drift}, names)


def prepare_views(warehouse: WarehouseConfig) -> None:
    """Create every gate view (empty scope) so the file context can be (re)written: Great
    Expectations checks that an asset's table exists when it is added."""
    with connect(warehouse, autocommit=True) as conn:
        ensure_landing_zone(conn)
        ensure_quality_schema(conn)
        row = conn.execute("select to_regclass(%s) is not null", (f"{MARTS}.fct_lead_scores",))
        found = row.fetchone()
        if not (found and found[0]):
            raise ConfigError(
                f"{MARTS}.fct_lead_scores does not exist yet: build the dbt project once "
                "(make demo, or dbt build) before writing the quality context"
            )
        create_raw_views(conn, RawScope(run_id=None), datetime.now().astimezone())
        create_score_views(conn, date.today(), None)
