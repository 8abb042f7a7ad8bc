"""
### Lead scoring

Scores every CRM contact in the warehouse and writes the changed scores back to the CRM. Each
run covers one data interval of the schedule (hourly by default) and scores as of that
interval's day, so the day's last run scores everything the day brought.

- **rules**: `check_rules` checks the ruleset (the seed CSVs) first; a bad value fails the
  run naming the file, line, rule id, column and value.
- **extract**: `extract_contacts`, `extract_email_events`, `load_web_events`, side by side;
  produce the `raw_crm.*` and `raw_analytics.*` assets.
- **turn**: `take_turn` waits (without holding a worker slot) until no other run is past it:
  a backfill runs several runs at once, and from here on runs build the same tables.
- **raw gate**: `check_raw`, the GX `raw_gate` on this run's loads; a failure stops dbt.
- **dbt**: `dbt_build.dbt_producer_watcher` runs one `dbt build` of the whole project
  (Cosmos `ExecutionMode.WATCHER`); `dbt_build.*` has a task per model, seed and test that
  reports that node's result from it. A retried node task runs its node on its own. Its data
  tests check the rows this run loaded or changed; the first run of the week's full-check day
  (`LEAD_SCORING_FULL_CHECK_DAY`, Sunday) checks the whole history.
- **score gate**: `check_scores`, the GX `score_gate` (checks of the whole set and of each
  score this run changed, every score on the full check; drift); a failure leaves the
  CRM untouched; produces the `lead_scoring_marts.*` assets once they passed.
- **sync**: `sync_crm`, changed scores only, at the CRM's rate limit; produces `crm.lead_scores`.
- **publish**: `publish`, the run summary; produces `lead_scoring_ops.pipeline_runs`.

A failed task writes a summary (stage, error, rows loaded, what did not run, task log and
Data Docs) to `lead_scoring_ops.pipeline_runs` and its log; `publish` writes it for a run that
went through.

Connections: `warehouse` (postgres) and `crm` (http: host = API base URL, password = token).

Params (checked when the run is triggered): `as_of` scores as of another date (not after
today); `full_refresh` re-reads every contact and export file and rebuilds dbt's incremental
models from the raw tables (the score history of past days is kept); `dry_run` computes the CRM
changes without writing them; `full_checks` runs dbt's data tests on the whole history;
`approve_score_drift` lets through scores that moved beyond the
drift bounds (an intended ruleset change); `approve_large_sync` lets the sync send more than
`LEAD_SCORING_SYNC_MAX_CHANGES` changes; `events_path` / `events_format` override where the
web-analytics export is and its format.

Schedule, catchup, start date and retries: `LEAD_SCORING_SCHEDULE`, `LEAD_SCORING_CATCHUP`,
`LEAD_SCORING_START_DATE`, `LEAD_SCORING_TASK_RETRIES` (README, "Operations"). The dbt graph comes
from `dbt_project/target/manifest.json`: run `make manifest` after changing the dbt project.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import (
    PRODUCER_WATCHER_DONE_TASK_ID,
    PRODUCER_WATCHER_TASK_ID,
    ExecutionMode,
    InvocationMode,
    LoadMode,
    TestBehavior,
)
from cosmos.profiles import PostgresUserPasswordProfileMapping

from lead_scoring import tasks
from lead_scoring.config import WAREHOUSE_CONN_ID
from lead_scoring.orchestration import assets
from lead_scoring.orchestration.settings import dag_settings_from_env, not_after
from lead_scoring.runtime.dbt_tools import CHECK_SCOPE_SETTING, as_of_options, with_setting

DBT_PROJECT_DIR = Path(
    os.environ.get(
        "LEAD_SCORING_DBT_PROJECT_DIR", Path(__file__).resolve().parents[1] / "dbt_project"
    )
)
AS_OF = "{{ params.as_of or ds }}"
# `changed` or `full` (lead_scoring.orchestration.settings.DagSettings.check_scope)
CHECK_SCOPE = "{{ check_scope(params.full_checks, data_interval_start, data_interval_end) }}"
SETTINGS = dag_settings_from_env()


def _interval(context: dict[str, Any]) -> Any:
    return tasks.logical_interval(
        context.get("data_interval_start"), context.get("data_interval_end")
    )


def _producer_first(group: Any) -> None:
    """Cosmos starts a task group's first watcher sensors beside its producer (the one
    ``dbt build``). Run one task at a time (``dag.test()``, a pool of one) and a sensor that
    starts first waits for a build that never starts: so the producer comes first, and each
    sensor then reports its node's result whether the build succeeded or failed (``one_done``;
    a build that never ran, because the raw gate failed, skips them).

    The producer never retries: Cosmos skips a second attempt rather than build twice, and a
    skipped build would skip every node, the score gate and the sync, and the run would end
    green. Failed, its node tasks report each node, and a node the build did not finish is
    run (and retried) by its own task."""
    prefix = f"{group.group_id}."
    producer = group.dag.task_dict[prefix + PRODUCER_WATCHER_TASK_ID]
    producer.retries = 0
    inside = {t for t in group.dag.task_dict if t.startswith(prefix)}
    for task_id in sorted(inside - {producer.task_id, prefix + PRODUCER_WATCHER_DONE_TASK_ID}):
        task = group.dag.task_dict[task_id]
        if not task.upstream_task_ids & inside:
            producer >> task
            task.trigger_rule = "one_done"


def _as_of(context: dict[str, Any]) -> str:
    return str(context["params"].get("as_of") or context["ds"])


@dag(
    dag_id="lead_scoring",
    schedule=SETTINGS.timetable(),
    start_date=pendulum.datetime(
        SETTINGS.start_date.year, SETTINGS.start_date.month, SETTINGS.start_date.day, tz="UTC"
    ),
    catchup=SETTINGS.catchup,
    max_active_runs=1,
    tags=["lead-scoring", "crm", "dbt", "great-expectations"],
    doc_md=__doc__,
    user_defined_macros={"check_scope": SETTINGS.check_scope},
    default_args={
        "owner": "data-engineering",
        "retries": SETTINGS.retries,
        "retry_delay": SETTINGS.retry_delay,
        "retry_exponential_backoff": True,
        "max_retry_delay": SETTINGS.max_retry_delay,
        "on_failure_callback": tasks.on_failure,
    },
    params={
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date",
            pattern=not_after(pendulum.now("UTC").date()),
            description="Score as of this date (YYYY-MM-DD, not after today, UTC); default: "
            "the day of the run's data interval.",
        ),
        "full_refresh": Param(
            False,
            type="boolean",
            description="Re-read every contact and export file, and rebuild dbt's incremental "
            "models from the raw tables (past days' scores are kept).",
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
        "full_checks": Param(
            False,
            type="boolean",
            description="Run dbt's data tests on the whole history, not only on the rows this "
            "run loaded or changed (the weekly full check does it on its own).",
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
    @task(outlets=assets.RAW_CONTACTS, doc_md=tasks.extract_contacts.__doc__)
    def extract_contacts(**context: Any) -> dict[str, Any]:
        return tasks.extract_contacts(
            run_id=context["run_id"],
            interval=_interval(context),
            full_refresh=bool(context["params"].get("full_refresh")),
        )

    @task(outlets=assets.RAW_EMAIL_EVENTS, doc_md=tasks.extract_email_events.__doc__)
    def extract_email_events(**context: Any) -> dict[str, Any]:
        return tasks.extract_email_events(run_id=context["run_id"], interval=_interval(context))

    @task(outlets=assets.RAW_WEB_EVENTS, doc_md=tasks.load_web_events.__doc__)
    def load_web_events(**context: Any) -> dict[str, Any]:
        return tasks.load_web_events(
            run_id=context["run_id"],
            path=context["params"].get("events_path"),
            fmt=context["params"].get("events_format"),
            interval=_interval(context),
            full_refresh=bool(context["params"].get("full_refresh")),
        )

    @task(doc_md=tasks.check_rules.__doc__)
    def check_rules() -> dict[str, Any]:
        return tasks.check_rules()

    @task.sensor(
        poke_interval=30, timeout=6 * 3600, mode="reschedule", doc_md=tasks.take_turn.__doc__
    )
    def take_turn(**context: Any) -> bool:
        return tasks.take_turn(
            run_id=context["run_id"], dag_id=context["dag"].dag_id, ti=context["ti"]
        )

    @task(doc_md=tasks.check_raw.__doc__)
    def check_raw(**context: Any) -> dict[str, Any]:
        return tasks.check_raw(run_id=context["run_id"], interval=_interval(context))

    dbt_build = DbtTaskGroup(
        group_id="dbt_build",
        tooltip="One dbt build of the scoring project (the producer task), and a task per "
        "model, seed and test that shows its node's result",
        project_config=ProjectConfig(
            dbt_project_path=DBT_PROJECT_DIR,
            manifest_path=DBT_PROJECT_DIR / "target" / "manifest.json",
            install_dbt_deps=False,
        ),
        profile_config=ProfileConfig(
            profile_name="lead_scoring",
            target_name="airflow",
            profile_mapping=PostgresUserPasswordProfileMapping(
                conn_id=WAREHOUSE_CONN_ID,
                profile_args={"schema": "lead_scoring", "threads": SETTINGS.dbt_threads},
            ),
        ),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.WATCHER, invocation_mode=InvocationMode.DBT_RUNNER
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=TestBehavior.AFTER_EACH,
            # dbt build runs a test on two nodes (relationships) once both are built; a
            # detached test task would wait for a result the producer never reports.
            should_detach_multiple_parents_tests=False,
            # The score gate declares the marts as assets once it has passed them; Cosmos's
            # own asset URIs would name the warehouse host (a socket folder when embedded).
            emit_datasets=False,
        ),
        operator_args={
            # The as-of date reaches the models as a session setting on dbt's connections,
            # not a dbt var: the compiled project is the same every day, so dbt does not
            # re-parse it (a var that changes would).
            # So does the scope of the data tests: the rows this run loaded or changed, or the
            # whole history (the weekly full check, or the full_checks param).
            "env": {
                "PGOPTIONS": with_setting(
                    as_of_options(AS_OF, os.environ.get("PGOPTIONS")),
                    CHECK_SCOPE_SETTING,
                    CHECK_SCOPE,
                )
            },
            # Incremental models rebuilt from the raw tables; the score marts keep past days.
            "full_refresh": "{{ params.full_refresh }}",
            # dbt unit tests (given rows -> expected rows) run in CI, not on production data:
            # dbt's own advice, and they cannot run before an incremental model's first build.
            # A flag, not an env var: Cosmos copies operator env into the worker's os.environ.
            "dbt_cmd_flags": ["--exclude-resource-type", "unit_test"],
        },
    )

    @task(outlets=assets.SCORE_MARTS, doc_md=tasks.check_scores.__doc__)
    def check_scores(**context: Any) -> dict[str, Any]:
        return tasks.check_scores(
            as_of=_as_of(context),
            run_id=context["run_id"],
            approve_drift=bool(context["params"].get("approve_score_drift")),
            full_check=SETTINGS.check_scope(
                bool(context["params"].get("full_checks")),
                context.get("data_interval_start"),
                context.get("data_interval_end"),
            )
            == "full",
        )

    @task(outlets=assets.CRM_SCORES, doc_md=tasks.sync_scores.__doc__)
    def sync_crm(**context: Any) -> dict[str, Any]:
        return tasks.sync_scores(
            run_id=context["run_id"],
            as_of=_as_of(context),
            dry_run=bool(context["params"].get("dry_run")),
            approve_changes=bool(context["params"].get("approve_large_sync")),
        )

    @task(outlets=assets.RUN_SUMMARY, doc_md=tasks.publish.__doc__)
    def publish(**context: Any) -> dict[str, Any]:
        return tasks.publish(
            run_id=context["run_id"],
            dag_id=context["dag"].dag_id,
            logical_date=context.get("logical_date"),
            as_of=_as_of(context),
        )

    _producer_first(dbt_build)
    extracts = [extract_contacts(), extract_email_events(), load_web_events()]
    check_rules() >> extracts  # a broken ruleset stops the run before it reads anything
    extracts >> take_turn() >> check_raw() >> dbt_build
    dbt_build >> check_scores() >> sync_crm() >> publish()


lead_scoring()
