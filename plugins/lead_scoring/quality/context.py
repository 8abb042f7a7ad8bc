"""The Great Expectations file context in ``expectations/``, written from the definitions here.

The committed files (``great_expectations.yml``, suites, validation definitions, checkpoints)
are what runs; this module is how they are made, so a reviewer reads the rules in one place and
``lead-scoring quality init`` rewrites the files after a change. The Postgres data source keeps
the connection string as the ``${WAREHOUSE_URL}`` placeholder: no secret is ever written there;
the gate sets it from the Airflow connection in the task's own environment.

Each validation reads a whole view of ``lead_scoring_quality`` (see ``quality.scope``): the gate
points those views at the rows of its own run (the run's loads, the as-of date) just before it
runs the checkpoint, so a gate judges exactly what the run produced and never re-scans history.
Bounds that operators tune (quarantine share, freshness, drift) are suite parameters, filled in
by the gate from its settings; each expectation has a stable ``meta.name`` and a severity.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lead_scoring.config import gx_context_dir
from lead_scoring.crm.schema import LIFECYCLE_STAGES
from lead_scoring.extract.hubspot import EMAIL_EVENT_TYPES
from lead_scoring.extract.segment import SEGMENT_TYPES
from lead_scoring.quality.scope import QUALITY
from lead_scoring.warehouse import MARTS, RULES

DATASOURCE = "warehouse"
RAW_CHECKPOINT = "raw_gate"
SCORES_CHECKPOINT = "score_gate"
WHOLE_VIEW = "whole_view"

# The same loose shape the loader accepts (one @, no spaces, a dot in the domain), in
# PostgreSQL's regex dialect.
EMAIL_REGEX = r"^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:].]+$"

# Drift expectations carry this in their meta: an approved run may pass them.
DRIFT = "drift"


def _named(expectation: Any, name: str, severity: str = "critical", *, drift: bool = False) -> Any:
    """Give an expectation the stable name that logs, overrides and the gate record use."""
    expectation.meta = {"name": name, **({DRIFT: True} if drift else {})}
    expectation.severity = severity
    return expectation


def raw_expectations() -> dict[str, list[Any]]:
    """Per view of ``lead_scoring_quality``: what the rows a run extracted must satisfy before
    dbt may read them. Bounds are suite parameters, set by the gate from its settings."""
    import great_expectations as gx

    e = gx.expectations

    def age_bounds(column: str, name: str) -> Any:
        return _named(
            e.ExpectColumnValuesToBeBetween(
                column=column,
                min_value={"$PARAMETER": "min_event_age_days"},
                max_value={"$PARAMETER": "max_event_age_days"},
                description="Event timestamps are neither in the future nor absurdly old.",
            ),
            name,
        )

    return {
        "raw_contacts": [
            _named(e.ExpectColumnValuesToNotBeNull(column="contact_id"), "contacts.id_not_null"),
            _named(e.ExpectColumnValuesToBeUnique(column="contact_id"), "contacts.id_unique"),
            _named(
                e.ExpectColumnValuesToMatchRegex(column="email", regex=EMAIL_REGEX),
                "contacts.email_well_formed",
            ),
            _named(
                e.ExpectColumnValuesToBeInSet(
                    column="lifecycle_stage", value_set=list(LIFECYCLE_STAGES)
                ),
                "contacts.lifecycle_stage_known",
            ),
        ],
        "raw_email_events": [
            _named(e.ExpectColumnValuesToNotBeNull(column="event_id"), "email_events.id_not_null"),
            _named(e.ExpectColumnValuesToBeUnique(column="event_id"), "email_events.id_unique"),
            _named(
                e.ExpectColumnValuesToBeInSet(
                    column="event_type", value_set=sorted(EMAIL_EVENT_TYPES)
                ),
                "email_events.type_known",
            ),
            age_bounds("event_age_days", "email_events.timestamp_plausible"),
        ],
        "raw_web_events": [
            _named(e.ExpectColumnValuesToNotBeNull(column="message_id"), "web_events.id_not_null"),
            _named(e.ExpectColumnValuesToBeUnique(column="message_id"), "web_events.id_unique"),
            _named(
                e.ExpectColumnValuesToBeInSet(column="event_type", value_set=sorted(SEGMENT_TYPES)),
                "web_events.type_known",
            ),
            age_bounds("event_age_days", "web_events.timestamp_plausible"),
        ],
        "raw_loads": [
            _named(
                e.ExpectColumnValuesToBeBetween(
                    column="quarantine_share",
                    min_value=0,
                    max_value={"$PARAMETER": "max_quarantine_share"},
                    description="Each load quarantined at most the configured share of its rows.",
                ),
                "loads.quarantine_share",
            ),
        ],
        "raw_freshness": [
            *(
                _named(
                    e.ExpectColumnValuesToBeBetween(
                        column=f"hours_since_newest_{source}_event",
                        max_value={"$PARAMETER": f"max_hours_since_newest_{source}_event"},
                        description=(
                            f"The newest {source} event is recent enough (hours before the end "
                            "of the run's data interval)."
                        ),
                    ),
                    f"freshness.{source}_events",
                )
                for source in ("web", "email")
            ),
            *(
                _named(
                    e.ExpectColumnValuesToNotBeNull(column=f"newest_{source}_event_at"),
                    f"freshness.{source}_events_exist",
                    severity="warning",
                )
                for source in ("web", "email")
            ),
        ],
    }


def score_set_expectations() -> list[Any]:
    """What must hold for the whole set of a day's scores before any of them may reach the
    CRM (the view ``scores``)."""
    import great_expectations as gx

    e = gx.expectations
    return [
        _named(e.ExpectTableRowCountToBeBetween(min_value=1), "scores.not_empty"),
        _named(
            e.ExpectCompoundColumnsToBeUnique(column_list=["lead_id", "scoring_model_id"]),
            "scores.one_row_per_lead_and_model",
        ),
        _named(
            e.UnexpectedRowsExpectation(
                description="Every scoring model scores the same leads (no model short of rows).",
                unexpected_rows_query=(
                    "select models.scoring_model_id, count(scores.lead_id) as leads "
                    f"from {RULES}.scoring_models as models "
                    "left join {batch} as scores "
                    "on scores.scoring_model_id = models.scoring_model_id "
                    "group by models.scoring_model_id "
                    "having count(scores.lead_id) <> "
                    "(select count(distinct lead_id) from {batch})"
                ),
            ),
            "scores.every_model_every_lead",
        ),
    ]


def changed_score_expectations() -> list[Any]:
    """What must hold for each score the day's build changed (the view ``changed_scores``;
    every score on a full check): a score it did not change passed when it was written."""
    import great_expectations as gx

    e = gx.expectations
    return [
        *(
            _named(e.ExpectColumnValuesToNotBeNull(column=column), f"scores.{column}_not_null")
            for column in ("lead_id", "scoring_model_id", "total_score", "band", "ruleset_version")
        ),
        _named(
            e.ExpectColumnValuesToBeInSet(column="band", value_set=["cold", "warm", "hot"]),
            "scores.band_known",
        ),
        _named(
            e.UnexpectedRowsExpectation(
                description="Totals lie within each model's clamp (score_floor..score_ceiling).",
                unexpected_rows_query=(
                    "select scores.lead_id, scores.scoring_model_id, scores.total_score "
                    "from {batch} as scores "
                    f"inner join {RULES}.scoring_models as models "
                    "on scores.scoring_model_id = models.scoring_model_id "
                    "where scores.total_score < models.score_floor "
                    "or scores.total_score > models.score_ceiling"
                ),
            ),
            "scores.within_clamp",
        ),
        _named(
            e.UnexpectedRowsExpectation(
                description=(
                    "Band, MQL and SQL flags follow the thresholds of the lead's model and "
                    "segment (the segment's row, else the model's default row '*')."
                ),
                unexpected_rows_query=(
                    "select scores.lead_id, scores.scoring_model_id, scores.total_score, "
                    "scores.band "
                    "from {batch} as scores "
                    f"left join {RULES}.score_thresholds as by_segment "
                    "on scores.scoring_model_id = by_segment.scoring_model_id "
                    "and scores.segment = by_segment.segment "
                    f"left join {RULES}.score_thresholds as by_default "
                    "on scores.scoring_model_id = by_default.scoring_model_id "
                    "and by_default.segment = '*' "
                    "cross join lateral (select "
                    "coalesce(by_segment.hot_threshold, by_default.hot_threshold) as hot, "
                    "coalesce(by_segment.warm_threshold, by_default.warm_threshold) as warm, "
                    "coalesce(by_segment.mql_threshold, by_default.mql_threshold) as mql, "
                    "coalesce(by_segment.sql_threshold, by_default.sql_threshold) as sql"
                    ") as t "
                    "where t.hot is null "
                    "or scores.band <> case "
                    "when scores.total_score >= t.hot then 'hot' "
                    "when scores.total_score >= t.warm then 'warm' "
                    "else 'cold' end "
                    "or scores.is_mql <> (scores.total_score >= t.mql) "
                    "or (scores.is_sql and scores.total_score < t.sql)"
                ),
            ),
            "scores.flags_follow_thresholds",
        ),
        _named(
            e.UnexpectedRowsExpectation(
                description=(
                    "Each current score is the exact sum of its ledger lines (the ledger holds "
                    "the current lines; those of a replaced version are recomputed on demand)."
                ),
                unexpected_rows_query=(
                    "select scores.lead_id, scores.scoring_model_id, scores.total_score, "
                    "lines.points as ledger_points "
                    "from {batch} as scores "
                    "left join (select ledger.score_id, sum(ledger.points) as points "
                    f"from {MARTS}.fct_lead_score_ledger as ledger "
                    "group by ledger.score_id) as lines "
                    "on scores.score_id = lines.score_id "
                    "where coalesce(lines.points, 0) <> scores.total_score "
                    f"and scores.score_id in (select score_id from {MARTS}.fct_lead_scores)"
                ),
            ),
            "scores.ledger_sums_to_total",
        ),
    ]


def drift_expectations() -> list[Any]:
    """The drift guard: per model, against the last run that passed. A wrong rule can flip
    thousands of CRM records at once; a run that moves more than the bounds needs approval."""
    import great_expectations as gx

    e = gx.expectations

    def bound(column: str, parameter: str, name: str, description: str) -> Any:
        return _named(
            e.ExpectColumnValuesToBeBetween(
                column=column, max_value={"$PARAMETER": parameter}, description=description
            ),
            name,
            drift=True,
        )

    return [
        bound(
            "hot_share_shift",
            "max_hot_share_shift",
            "drift.hot_share",
            "The share of hot leads moved at most the configured bound since the last run.",
        ),
        bound(
            "mql_rate_shift",
            "max_mql_rate_shift",
            "drift.mql_rate",
            "The MQL rate moved at most the configured bound since the last run.",
        ),
        bound(
            "band_change_share",
            "max_band_change_share",
            "drift.band_changes",
            "At most the configured share of leads changed band since the last run.",
        ),
    ]


def gate_suites() -> dict[str, list[tuple[str, str, list[Any]]]]:
    """checkpoint -> its validations: (view of ``lead_scoring_quality``, suite, expectations)."""
    raw = [(view, view, expectations) for view, expectations in raw_expectations().items()]
    return {
        RAW_CHECKPOINT: raw,
        SCORES_CHECKPOINT: [
            ("scores", "lead_scores", score_set_expectations()),
            ("changed_scores", "lead_scores_changed", changed_score_expectations()),
            ("score_drift", "lead_score_drift", drift_expectations()),
        ],
    }


def init_context(context_dir: Path | None = None) -> Path:
    """(Re)write the file context: data source, assets, suites, validation definitions, checkpoints.

    Idempotent: existing objects with the same names are replaced, so the files always match
    the definitions above.
    """
    import great_expectations as gx

    context_dir = context_dir or gx_context_dir()
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    context = gx.get_context(mode="file", context_root_dir=str(context_dir))
    context.variables.analytics_enabled = False
    context.variables.save()

    for name in list(context.checkpoints.all()):
        context.checkpoints.delete(name.name)
    for definition in list(context.validation_definitions.all()):
        context.validation_definitions.delete(definition.name)
    for suite in list(context.suites.all()):
        context.suites.delete(suite.name)
    if DATASOURCE in context.data_sources.all():
        context.data_sources.delete(DATASOURCE)

    source = context.data_sources.add_postgres(DATASOURCE, connection_string="${WAREHOUSE_URL}")
    for checkpoint, parts in gate_suites().items():
        validations = []
        for view, suite_name, expectations in parts:
            asset = source.add_table_asset(view, table_name=view, schema_name=QUALITY)
            batch = asset.add_batch_definition_whole_table(WHOLE_VIEW)
            suite = context.suites.add(gx.ExpectationSuite(name=suite_name))
            for expectation in expectations:
                suite.add_expectation(expectation)
            validations.append(
                context.validation_definitions.add(
                    gx.ValidationDefinition(name=f"{checkpoint}.{view}", data=batch, suite=suite)
                )
            )
        context.checkpoints.add(
            gx.Checkpoint(
                name=checkpoint,
                validation_definitions=validations,
                actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")],
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": 10},
            )
        )
    return context_dir
