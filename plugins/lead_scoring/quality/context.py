"""The Great Expectations file context in ``expectations/``, written from the definitions here.

The committed files (``great_expectations.yml``, suites, validation definitions, checkpoints)
are what runs; this module is how they are made, so a reviewer reads the rules in one place and
``lead-scoring quality init`` rewrites the files after a change. The Postgres data source keeps
the connection string as the ``${WAREHOUSE_URL}`` placeholder: no secret is ever written there;
the gate sets it from the Airflow connection in the task's own environment.

Scores are validated one as-of date at a time (a daily batch on ``as_of_date``), so a gate judges
exactly the rows the run produced.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lead_scoring.config import gx_context_dir
from lead_scoring.warehouse import MARTS, RULES

DATASOURCE = "warehouse"
SCORES_ASSET = "fct_lead_scores"
SCORES_BATCH = "by_as_of_date"
SCORES_SUITE = "lead_scores"
SCORES_VALIDATION = "lead_scores_by_as_of_date"
SCORES_CHECKPOINT = "score_gate"


def score_expectations() -> list[Any]:
    """What must hold for a day's scores before any of them may reach the CRM."""
    import great_expectations as gx

    e = gx.expectations
    return [
        e.ExpectTableRowCountToBeBetween(min_value=1),
        e.ExpectCompoundColumnsToBeUnique(column_list=["lead_id", "scoring_model_id"]),
        *(
            e.ExpectColumnValuesToNotBeNull(column=column)
            for column in ("lead_id", "scoring_model_id", "total_score", "band", "ruleset_version")
        ),
        e.ExpectColumnValuesToBeInSet(column="band", value_set=["cold", "warm", "hot"]),
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
        e.UnexpectedRowsExpectation(
            description=(
                "Band, MQL and SQL flags follow the thresholds of the lead's model and segment "
                "(the segment's row, else the model's default row '*')."
            ),
            unexpected_rows_query=(
                "select scores.lead_id, scores.scoring_model_id, scores.total_score, scores.band "
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
    ]


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
    scores = source.add_table_asset(SCORES_ASSET, table_name="fct_lead_scores", schema_name=MARTS)
    by_day = scores.add_batch_definition_daily(SCORES_BATCH, column="as_of_date")

    suite = context.suites.add(gx.ExpectationSuite(name=SCORES_SUITE))
    for expectation in score_expectations():
        suite.add_expectation(expectation)

    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=SCORES_VALIDATION, data=by_day, suite=suite)
    )
    context.checkpoints.add(
        gx.Checkpoint(
            name=SCORES_CHECKPOINT,
            validation_definitions=[validation],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")],
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 10},
        )
    )
    return context_dir
