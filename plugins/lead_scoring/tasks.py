"""What each task of the ``lead_scoring`` DAG does, kept out of the DAG file.

Each function resolves its connections through Airflow (``warehouse``, ``crm``), calls the part
of the package that does the work, logs a one-line summary and returns a small JSON-able dict
(it becomes the task's XCom; it never holds a secret).
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lead_scoring.config import ConfigError, crm_config, warehouse_config

if TYPE_CHECKING:
    from lead_scoring.crm.client import HubSpotClient
    from lead_scoring.load.batch import Interval

log = logging.getLogger(__name__)

EMAIL_LOOKBACK_DAYS = int(os.environ.get("LEAD_SCORING_EMAIL_LOOKBACK_DAYS", "400"))


def parse_as_of(value: str | date | None) -> date:
    """The as-of date from a DAG param or the logical date (``YYYY-MM-DD``), not after today
    (UTC): a score as of a day that has not happened would decay activity that may still come."""
    if isinstance(value, date):
        parsed = value
    elif not value:
        return datetime.now(UTC).date()
    else:
        try:
            parsed = date.fromisoformat(str(value)[:10])
        except ValueError:
            raise ConfigError(f"as_of must be a date like 2024-06-01, got {value!r}") from None
    today = datetime.now(UTC).date()
    if parsed > today:
        raise ConfigError(f"as_of {parsed} is after today ({today}, UTC): scores cannot be ahead")
    return parsed


def events_location(param: str | None) -> str:
    """Where the web-analytics export lives (a folder or an fsspec URL): the DAG param, else
    ``LEAD_SCORING_EVENTS_PATH``."""
    raw = param or os.environ.get("LEAD_SCORING_EVENTS_PATH")
    if not raw:
        raise ConfigError(
            "no web events location: set the DAG param events_path or LEAD_SCORING_EVENTS_PATH "
            "(a folder, or a URL such as s3://bucket/segment-logs/)"
        )
    return raw if "://" in raw else str(Path(raw).expanduser())


def events_format(param: str | None) -> str:
    fmt = param or os.environ.get("LEAD_SCORING_EVENTS_FORMAT") or "segment"
    if fmt not in ("segment", "ga4"):
        raise ConfigError(f"events format must be 'segment' or 'ga4', got {fmt!r}")
    return fmt


def logical_interval(start: datetime | None, end: datetime | None) -> Interval | None:
    """The run's data interval (None when Airflow gives none, e.g. an unscheduled DAG)."""
    from lead_scoring.load.batch import Interval

    if start is None or end is None:
        return None
    return Interval(start.astimezone(UTC), end.astimezone(UTC))


def _hubspot_client() -> HubSpotClient:
    """The CRM client, paced to the portal's tier (``LEAD_SCORING_HUBSPOT_RATE_LIMIT``)."""
    from lead_scoring.crm.client import HubSpotClient
    from lead_scoring.crm.ratelimit import rate_limit_from_env

    crm = crm_config(via_airflow=True)
    return HubSpotClient(crm.base_url, crm.token, rate_limit=rate_limit_from_env())


def extract_contacts(
    *, run_id: str | None, interval: Interval | None = None, full_refresh: bool = False
) -> dict[str, Any]:
    """Contacts changed since the watermark (search), or all of them (list), into raw_crm."""
    from lead_scoring.extract import jobs

    with _hubspot_client() as client:
        result = jobs.extract_contacts(
            warehouse_config(via_airflow=True),
            client,
            interval=interval,
            full_refresh=full_refresh,
            run_id=run_id,
        )
        history = jobs.extract_property_history(
            warehouse_config(via_airflow=True), client, interval=interval, run_id=run_id
        )
        log.info("CRM calls: %s", client.stats)
    return {**_load_summary(result), "history": _load_summary(history)}


def extract_email_events(*, run_id: str | None, interval: Interval | None = None) -> dict[str, Any]:
    """Marketing-email events since the watermark (or the lookback) into raw_crm."""
    from lead_scoring.extract import jobs

    with _hubspot_client() as client:
        result = jobs.extract_email_events(
            warehouse_config(via_airflow=True),
            client,
            interval=interval,
            lookback=timedelta(days=EMAIL_LOOKBACK_DAYS),
            run_id=run_id,
        )
        log.info("CRM calls: %s", client.stats)
    return _load_summary(result)


def load_web_events(
    *,
    run_id: str | None,
    path: str | None,
    fmt: str | None = None,
    interval: Interval | None = None,
    full_refresh: bool = False,
) -> dict[str, Any]:
    """New or changed files of the web-analytics export into raw_analytics.web_events."""
    from lead_scoring.extract import jobs

    result = jobs.load_web_events(
        warehouse_config(via_airflow=True),
        events_location(path),
        fmt=events_format(fmt),
        interval=interval,
        full_refresh=full_refresh,
        run_id=run_id,
    )
    return _load_summary(result)


def check_rules() -> dict[str, Any]:
    """The ruleset (the dbt project's seeds) is checked before anything is scored: a bad value
    fails the run here, naming the file, line, rule id, column and value, instead of a dbt
    test that names none of them after the extracts ran."""
    from lead_scoring.config import dbt_project_dir
    from lead_scoring.rules.validate import validate_ruleset

    folder = dbt_project_dir() / "seeds"
    checked = validate_ruleset(folder)
    log.info("ruleset %s: %d rows checked, no problems", folder, checked)
    return {"ruleset": str(folder), "rows_checked": checked}


def take_turn(*, run_id: str, dag_id: str, ti: Any) -> bool:
    """Waits until no other run of the DAG is past this point (a backfill runs several at
    once, beside the scheduled ones): runs build the same tables, so from the raw gate to
    publish they go one at a time, oldest logical date first (a backfill scores its days in
    order and the CRM ends with the newest). A lease held by a run that no longer runs is
    taken over."""
    from lead_scoring.orchestration.turns import take_turn as take

    earlier = ti.get_previous_dagrun(state="running")
    if earlier is not None:
        log.info("waiting for the earlier run %s to finish first", earlier.run_id)
        return False

    def is_running(other: str) -> bool:
        try:
            state = ti.get_dagrun_state(dag_id, other)
        except Exception as exc:  # AirflowRuntimeError, from the API server's answer
            if _is_not_found(exc):
                log.warning(
                    "run %s holds the turn but Airflow has no such run any more (deleted, "
                    "replaced by `dags test`, or cleaned): releasing it",
                    other,
                )
                return False
            raise
        return str(state) in ("running", "DagRunState.RUNNING")

    holder = take(warehouse_config(via_airflow=True), run_id, is_running)
    if holder:
        log.info("waiting for run %s to finish: runs of %s take turns", holder, dag_id)
        return False
    log.info("run %s has its turn", run_id)
    return True


def _is_not_found(exc: BaseException) -> bool:
    """Whether an error from the task SDK says the API server found no such object (404)."""
    error = getattr(exc, "error", None)
    detail = getattr(error, "detail", None)
    if isinstance(detail, dict) and detail.get("status_code") == 404:
        return True
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None) == 404


def _hand_back(run_id: str) -> None:
    from lead_scoring.orchestration.turns import hand_back

    if hand_back(warehouse_config(via_airflow=True), run_id):
        log.info("run %s handed its turn back", run_id)


def check_raw(*, run_id: str | None, interval: Interval | None = None) -> dict[str, Any]:
    """The raw gate: fails the task (and so stops dbt) when the run's extracts are bad."""
    from lead_scoring.quality.gates import raw_gate, summary

    result = raw_gate(
        warehouse_config(via_airflow=True),
        run_id=run_id,
        reference=interval.end if interval else None,
    )
    log.info("Data Docs: %s", result.data_docs)
    return summary(result)


def check_scores(
    *,
    as_of: str | None,
    run_id: str | None = None,
    approve_drift: bool = False,
    full_check: bool = False,
) -> dict[str, Any]:
    """The score gate: fails the task (and so blocks the sync) when an expectation fails, or
    when the scores drifted beyond the bounds and the run is not approved. Row by row it
    checks the scores this run changed (every score on a full check)."""
    from lead_scoring.quality.gates import score_gate, summary

    result = score_gate(
        warehouse_config(via_airflow=True),
        parse_as_of(as_of),
        run_id=run_id,
        approve_drift=approve_drift,
        full_check=full_check,
    )
    log.info("Data Docs: %s", result.data_docs)
    return summary(result)


def sync_scores(
    *,
    run_id: str | None,
    as_of: str | None,
    dry_run: bool = False,
    approve_changes: bool = False,
) -> dict[str, Any]:
    """Send changed scores to the CRM ``LEAD_SCORING_SYNC_TARGET`` names (HubSpot by default;
    at most ``LEAD_SCORING_SYNC_MAX_CHANGES`` unless the run approves more)."""
    from contextlib import ExitStack

    from lead_scoring.config import salesforce_config, sync_target_from_env
    from lead_scoring.sync.engine import (
        Target,
        concurrency_from_env,
        max_attempts_from_env,
        max_changes_from_env,
        max_first_sync_leads_from_env,
        run_sync,
    )

    with ExitStack() as stack:
        target: Target
        if sync_target_from_env() == "salesforce":
            from lead_scoring.crm.salesforce import SalesforceBulkClient
            from lead_scoring.sync.salesforce import SalesforceTarget

            org = salesforce_config(via_airflow=True)
            client = stack.enter_context(
                SalesforceBulkClient(org.instance_url, org.token, api_version=org.api_version)
            )
            target = SalesforceTarget(
                client, external_id=org.external_id, batch_size=org.batch_size
            )
        else:
            from lead_scoring.sync.hubspot import HubSpotTarget

            target = HubSpotTarget(stack.enter_context(_hubspot_client()))
        result = run_sync(
            warehouse_config(via_airflow=True),
            target,
            parse_as_of(as_of),
            dag_run_id=run_id,
            dry_run=dry_run,
            max_changes=max_changes_from_env(),
            max_first_sync_leads=max_first_sync_leads_from_env(),
            approve_changes=approve_changes,
            max_attempts=max_attempts_from_env(),
            concurrency=concurrency_from_env(),
        )
    summary = asdict(result)
    summary["as_of"] = result.as_of.isoformat()
    return summary


def _load_summary(result: Any) -> dict[str, Any]:
    return {
        "batch_id": result.batch_id,
        "source": result.source,
        "rows_read": result.rows_read,
        "rows_inserted": result.rows_inserted,
        "rows_duplicate": result.rows_duplicate,
        "rows_quarantined": result.rows_quarantined,
        "rows_replaced": result.rows_replaced,
        "quarantine_reasons": dict(result.quarantine_reasons),
        "seconds": round(result.seconds, 3),
    }


def publish(
    *, run_id: str, dag_id: str, logical_date: datetime | None, as_of: str | None
) -> dict[str, Any]:
    """The run summary: rows loaded and quarantined per source, scores and bands per model,
    both gates' verdicts, what the sync sent, and where the Data Docs are; kept in
    ``lead_scoring_ops.pipeline_runs`` and logged."""
    from lead_scoring.orchestration.summary import publish as write_summary

    summary = write_summary(
        warehouse_config(via_airflow=True),
        dag_run_id=run_id,
        dag_id=dag_id,
        logical_date=logical_date,
        as_of=parse_as_of(as_of),
    )
    _hand_back(run_id)
    return summary


def on_failure(context: dict[str, Any]) -> None:
    """Failure callback of every task: writes the run's failure summary (stage, error, rows
    loaded, what did not run, the task log and Data Docs) to ``pipeline_runs`` and the log.
    It never raises, so the task's own error stays what Airflow reports."""
    from lead_scoring.orchestration.summary import Failure, record_failure

    try:
        ti = context.get("task_instance") or context.get("ti")
        dag = context.get("dag")
        params = context.get("params") or {}
        try:
            as_of: date | None = parse_as_of(params.get("as_of") or context.get("ds"))
        except ConfigError:
            as_of = None
        failure = Failure(
            dag_id=str(getattr(dag, "dag_id", None) or getattr(ti, "dag_id", "lead_scoring")),
            dag_run_id=str(context.get("run_id") or getattr(ti, "run_id", "?")),
            task_id=str(getattr(ti, "task_id", "?")),
            error=_describe_error(context.get("exception")),
            log_url=getattr(ti, "log_url", None),
            logical_date=context.get("logical_date"),
            as_of=as_of,
        )
        secrets: list[str] = []
        try:
            warehouse = warehouse_config(via_airflow=True)
            secrets.append(warehouse.password or "")
        except Exception as exc:  # no warehouse connection: the summary says so
            log.warning("failure summary: no warehouse connection (%s)", exc)
            warehouse = None
        with contextlib.suppress(Exception):  # only used to redact; no CRM is not news here
            secrets.append(crm_config(via_airflow=True).token)
        # The run's turn is not handed back here: its other branches may still be building.
        # Once the run has ended, the next run takes the lease over (its holder no longer runs).
        record_failure(warehouse, failure, secrets=secrets)
    except Exception:  # a broken callback must never mask the task's own failure
        log.exception("the failure summary could not be built")


def _describe_error(error: object) -> str:
    if error is None:
        return "failed (no exception given)"
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"
    return str(error)


def backtest(
    *,
    run_id: str,
    logical_date: date,
    outcome: str,
    cadence: str,
    maturity_days: int,
    max_cutoffs: int | None,
    draft_ruleset: str | None = None,
    capacity_per_week: float | None = None,
    target_precision: float | None = None,
) -> dict[str, Any]:
    """Backtest the production ruleset (and a draft from ``dbt_project/rulesets/<name>``, if
    asked) on the warehouse's own history, fit the learned draft beside a gradient-boosting
    reference, and write the HTML report under ``LEAD_SCORING_BACKTEST_DIR`` (default
    ``.local/backtest/warehouse``)/<logical date>. The report's path is in the log and in
    ``lead_scoring_ops.backtest_runs`` with the headline metrics."""
    from lead_scoring.backtest.cli import headline
    from lead_scoring.backtest.runner import BacktestOptions, record_run, run_backtest
    from lead_scoring.backtest.scoring import BacktestError, Ruleset
    from lead_scoring.config import dbt_project_dir, local_dir

    rulesets = [Ruleset("production")]
    if draft_ruleset:
        folder = dbt_project_dir() / "rulesets" / draft_ruleset
        if not folder.is_dir():
            raise BacktestError(
                f"draft_ruleset {draft_ruleset!r}: no folder {folder} (rulesets live in "
                "dbt_project/rulesets/)"
            )
        rulesets.append(Ruleset("draft", folder))
    root = Path(os.environ.get("LEAD_SCORING_BACKTEST_DIR", local_dir() / "backtest" / "warehouse"))
    warehouse = warehouse_config(via_airflow=True)
    options = BacktestOptions(
        rulesets=rulesets,
        outcome=outcome,
        cadence=cadence,
        maturity_days=maturity_days,
        max_cutoffs=max_cutoffs,
        capacity_per_week=capacity_per_week,
        target_precision=target_precision,
        out_dir=root / logical_date.isoformat(),
        title=f"Backtest of the warehouse, {logical_date.isoformat()}",
    )
    result = run_backtest(warehouse, options, say=log.info)
    for line in headline(result.summary):
        log.info("%s", line)
    record_run(warehouse, run_id, result)
    log.info("backtest report: file://%s", result.report)
    return {"report": str(result.report), "metrics": str(result.metrics_file)}
