"""
### Lead scoring backtest

Once a week, proves the production ruleset against what happened: scores it as of past cutoff
dates with the real dbt project (in `bt_*` schemas of its own, never the production marts),
labels each lead with whether it reached the outcome stage within the maturity window, holds
out the latest cutoffs, and writes a static HTML report: AUC, precision and lift by decile and
band, calibration, MQL volume per week, MQL conversion by band and segment, MQL threshold
advice from sales capacity or a target precision, and a learned ruleset (rounded points,
explainable, a draft to review in a pull request) beside a gradient-boosting reference.

- **backtest**: the whole job; the report's path is in the task log and in
  `lead_scoring_ops.backtest_runs` with the headline numbers.

Params: `outcome` (the stage that counts as converted), `cadence` and `max_cutoffs` (which
past dates), `maturity_days` (how long to wait after a cutoff), `draft_ruleset` (a folder of
`dbt_project/rulesets/` to compare with production), `capacity_per_week` and
`target_precision` (threshold advice).

Schedule: `LEAD_SCORING_BACKTEST_SCHEDULE` (default `@weekly`, or `none`). Connection:
`warehouse`. Reports: `LEAD_SCORING_BACKTEST_DIR` (default `.local/backtest/warehouse`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from lead_scoring import tasks
from lead_scoring.orchestration.settings import backtest_schedule_from_env


@dag(
    dag_id="lead_scoring_backtest",
    schedule=backtest_schedule_from_env(),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["lead-scoring", "backtest", "dbt"],
    doc_md=__doc__,
    default_args={
        "owner": "revenue-operations",
        "retries": 1,
        "retry_delay": timedelta(minutes=10),
        "on_failure_callback": tasks.on_failure,
    },
    params={
        "outcome": Param(
            "salesqualifiedlead",
            type="string",
            enum=["marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer"],
            description="The lifecycle stage (or a later one) that counts as converted.",
        ),
        "cadence": Param(
            "weekly",
            type="string",
            enum=["weekly", "monthly"],
            description="How far apart the past cutoff dates are.",
        ),
        "maturity_days": Param(
            30,
            type="integer",
            minimum=1,
            maximum=730,
            description="Days after a cutoff a lead has to convert.",
        ),
        "max_cutoffs": Param(
            12,
            type="integer",
            minimum=2,
            maximum=520,
            description="The latest this-many cutoffs (the last 30% are held out).",
        ),
        "draft_ruleset": Param(
            None,
            type=["null", "string"],
            pattern=r"^[a-z][a-z0-9_]*$",
            description="A folder of dbt_project/rulesets/ to compare with production.",
        ),
        "capacity_per_week": Param(
            None,
            type=["null", "number"],
            minimum=0,
            description="Leads per week sales can work (threshold advice).",
        ),
        "target_precision": Param(
            0.3,
            type=["null", "number"],
            minimum=0,
            maximum=1,
            description="Wanted share of MQLs that convert (threshold advice).",
        ),
    },
)
def lead_scoring_backtest() -> None:
    @task(doc_md=tasks.backtest.__doc__, execution_timeout=timedelta(hours=6))
    def backtest(**context: Any) -> dict[str, Any]:
        params = context["params"]
        return tasks.backtest(
            run_id=context["run_id"],
            logical_date=context["logical_date"].date(),
            outcome=params["outcome"],
            cadence=params["cadence"],
            maturity_days=int(params["maturity_days"]),
            max_cutoffs=int(params["max_cutoffs"]),
            draft_ruleset=params.get("draft_ruleset"),
            capacity_per_week=params.get("capacity_per_week"),
            target_precision=params.get("target_precision"),
        )

    backtest()


lead_scoring_backtest()
