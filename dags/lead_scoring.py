"""
### Lead scoring

Extracts contacts and email events from the CRM (HubSpot CRM v3) and web events from a Segment
JSONL export into `raw_crm` / `raw_analytics`, validates what this run loaded with the Great
Expectations `raw_gate` checkpoint (a failure stops dbt), builds the scores with dbt (Cosmos
renders one task per dbt node, each a `dbt build` of that node with its tests), validates the
day's scores and their drift from the last run with the `score_gate` checkpoint (a failure
blocks the sync and leaves the CRM untouched), and writes changed scores back to the CRM.

Connections: `warehouse` (postgres) and `crm` (http: host = API base URL, password = token).

Extraction is incremental: contacts changed since the last committed watermark (HubSpot search),
email events since then, and the export files that are new or changed. Re-running an interval
reads the same window again and replaces that interval's event rows.

Params: `as_of` scores as of another date (default: the logical date); `full_refresh` re-reads
every contact (list endpoint) and every export file; `events_path` (a folder or an fsspec URL)
and `events_format` (`segment` or `ga4`) override `LEAD_SCORING_EVENTS_PATH` /
`LEAD_SCORING_EVENTS_FORMAT`; `dry_run` computes the CRM changes without writing them;
`approve_score_drift` lets through scores that moved beyond the drift bounds (an intended
ruleset change). The bounds are `LEAD_SCORING_QUALITY_*` environment variables (README).
`approve_large_sync` lets the sync send more than `LEAD_SCORING_SYNC_MAX_CHANGES` changes.

The dbt graph comes from `dbt_project/target/manifest.json`: run `make manifest` (or
`lead-scoring dbt-parse`) after changing the dbt project.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior
from cosmos.profiles import PostgresUserPasswordProfileMapping

from lead_scoring import tasks
from lead_scoring.config import WAREHOUSE_CONN_ID

DBT_PROJECT_DIR = Path(
    os.environ.get(
        "LEAD_SCORING_DBT_PROJECT_DIR", Path(__file__).resolve().parents[1] / "dbt_project"
    )
)
AS_OF = "{{ params.as_of or ds }}"
TASK_RETRIES = int(os.environ.get("LEAD_SCORING_TASK_RETRIES", "1"))


def _interval(context: dict[str, Any]) -> Any:
    return tasks.logical_interval(
        context.get("data_interval_start"), context.get("data_interval_end")
    )


def _as_of(context: dict[str, Any]) -> str:
    return str(context["params"].get("as_of") or context["ds"])


@dag(
    dag_id="lead_scoring",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["lead-scoring", "crm", "dbt", "great-expectations"],
    doc_md=__doc__,
    default_args={
        "owner": "data-engineering",
        "retries": TASK_RETRIES,
        "retry_delay": timedelta(minutes=2),
        "on_failure_callback": tasks.on_failure,
    },
    params={
        "as_of": Param(
            None, type=["null", "string"], format="date", description="Score as of this date."
        ),
        "full_refresh": Param(
            False,
            type="boolean",
            description="Re-read every contact and every export file, not just what changed.",
        ),
        "events_path": Param(
            None,
            type=["null", "string"],
            description="Folder or fsspec URL (s3://, gs://, ...) of the web-analytics export.",
        ),
        "events_format": Param(
            None,
            type=["null", "string"],
            enum=[None, "segment", "ga4"],
            description="segment (Segment JSONL) or ga4 (GA4 BigQuery-export rows as JSON).",
        ),
        "dry_run": Param(
            False, type="boolean", description="Compute CRM changes without writing them."
        ),
        "approve_score_drift": Param(
            False,
            type="boolean",
            description=(
                "Let scores that moved beyond the drift bounds (share of hot leads, MQL rate, "
                "leads changing band) reach the CRM: for an intended ruleset change."
            ),
        ),
        "approve_large_sync": Param(
            False,
            type="boolean",
            description=(
                "Let the sync send more changes than LEAD_SCORING_SYNC_MAX_CHANGES "
                "(default 50,000); without it such a run fails and sends nothing."
            ),
        ),
    },
)
def lead_scoring() -> None:
    @task
    def extract_contacts(**context: Any) -> dict[str, Any]:
        return tasks.extract_contacts(
            run_id=context["run_id"],
            interval=_interval(context),
            full_refresh=bool(context["params"].get("full_refresh")),
        )

    @task
    def extract_email_events(**context: Any) -> dict[str, Any]:
        return tasks.extract_email_events(run_id=context["run_id"], interval=_interval(context))

    @task
    def load_web_events(**context: Any) -> dict[str, Any]:
        return tasks.load_web_events(
            run_id=context["run_id"],
            path=context["params"].get("events_path"),
            fmt=context["params"].get("events_format"),
            interval=_interval(context),
            full_refresh=bool(context["params"].get("full_refresh")),
        )

    @task
    def check_raw(**context: Any) -> dict[str, Any]:
        return tasks.check_raw(run_id=context["run_id"], interval=_interval(context))

    dbt_build = DbtTaskGroup(
        group_id="dbt_build",
        project_config=ProjectConfig(
            dbt_project_path=DBT_PROJECT_DIR,
            manifest_path=DBT_PROJECT_DIR / "target" / "manifest.json",
            install_dbt_deps=False,
        ),
        profile_config=ProfileConfig(
            profile_name="lead_scoring",
            target_name="airflow",
            profile_mapping=PostgresUserPasswordProfileMapping(
                conn_id=WAREHOUSE_CONN_ID, profile_args={"schema": "lead_scoring"}
            ),
        ),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.LOCAL, invocation_mode=InvocationMode.DBT_RUNNER
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=TestBehavior.BUILD,
            # A test on two nodes (relationships) runs once both are built, as its own task.
            should_detach_multiple_parents_tests=True,
            # No data-aware scheduling downstream; and asset URIs cannot name a socket host.
            emit_datasets=False,
        ),
        operator_args={
            "vars": {"as_of": AS_OF},
            # dbt unit tests (given rows -> expected rows) run in CI, not on production data:
            # dbt's own advice, and they cannot run before an incremental model's first build.
            # A flag, not an env var: Cosmos copies operator env into the worker's os.environ.
            "dbt_cmd_flags": ["--exclude-resource-type", "unit_test"],
        },
    )

    @task
    def check_scores(**context: Any) -> dict[str, Any]:
        return tasks.check_scores(
            as_of=_as_of(context),
            run_id=context["run_id"],
            approve_drift=bool(context["params"].get("approve_score_drift")),
        )

    @task
    def sync_crm(**context: Any) -> dict[str, Any]:
        return tasks.sync_scores(
            run_id=context["run_id"],
            as_of=_as_of(context),
            dry_run=bool(context["params"].get("dry_run")),
            approve_changes=bool(context["params"].get("approve_large_sync")),
        )

    extracts = [extract_contacts(), extract_email_events(), load_web_events()]
    extracts >> check_raw() >> dbt_build
    dbt_build >> check_scores() >> sync_crm()


lead_scoring()
