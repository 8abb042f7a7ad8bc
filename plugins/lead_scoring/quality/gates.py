"""Run a Great Expectations checkpoint as a gate: pass, or stop the pipeline with the reasons.

Great Expectations is imported here, inside the call, never when a DAG file is parsed. The
connection string reaches GX only through the ``WAREHOUSE_URL`` environment variable of the
running task (the file context holds the placeholder), and GX's own anonymous usage statistics
are switched off.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from lead_scoring.config import ConfigError, WarehouseConfig, gx_context_dir, sync_target_from_env
from lead_scoring.quality.context import DRIFT, RAW_CHECKPOINT, SCORES_CHECKPOINT
from lead_scoring.quality.scope import (
    baseline_as_of,
    create_raw_views,
    create_score_views,
    ensure_quality_schema,
    ledger_baseline,
    raw_scope,
)
from lead_scoring.warehouse import OPS, connect

log = logging.getLogger(__name__)

SEVERITIES = ("critical", "warning", "info")


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


@dataclass(frozen=True)
class QualitySettings:
    """The bounds the gates enforce, from ``LEAD_SCORING_QUALITY_*`` environment variables
    (in Airflow: the worker's environment; docker-compose.yml passes them through)."""

    max_quarantine_share: float = 0.05
    future_tolerance_days: float = 1.0
    max_event_age_days: float = 3650.0
    # Web events arrive all day; marketing email comes in campaigns (weeks apart).
    max_hours_since_newest_web_event: float = 48.0
    max_hours_since_newest_email_event: float = 21 * 24.0
    max_hot_share_shift: float = 0.10
    max_mql_rate_shift: float = 0.10
    max_band_change_share: float = 0.20
    # expectation name (meta.name) -> severity, overriding the suite's own
    severity: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> QualitySettings:
        defaults = cls()
        values = {
            name: _env_float(f"LEAD_SCORING_QUALITY_{name.upper()}", getattr(defaults, name))
            for name in (
                "max_quarantine_share",
                "future_tolerance_days",
                "max_event_age_days",
                "max_hours_since_newest_web_event",
                "max_hours_since_newest_email_event",
                "max_hot_share_shift",
                "max_mql_rate_shift",
                "max_band_change_share",
            )
        }
        raw = os.environ.get("LEAD_SCORING_QUALITY_SEVERITY") or "{}"
        try:
            severity = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"LEAD_SCORING_QUALITY_SEVERITY is not JSON: {exc}") from None
        if not isinstance(severity, dict) or any(v not in SEVERITIES for v in severity.values()):
            raise ConfigError(
                "LEAD_SCORING_QUALITY_SEVERITY must map expectation names to one of "
                f'{", ".join(SEVERITIES)}, e.g. {{"freshness.newest_event": "warning"}}; '
                f"got {raw!r}"
            )
        return cls(**values, severity=severity)

    def raw_parameters(self) -> dict[str, float]:
        return {
            "max_quarantine_share": self.max_quarantine_share,
            "min_event_age_days": -self.future_tolerance_days,
            "max_event_age_days": self.max_event_age_days,
            "max_hours_since_newest_web_event": self.max_hours_since_newest_web_event,
            "max_hours_since_newest_email_event": self.max_hours_since_newest_email_event,
        }

    def drift_parameters(self) -> dict[str, float]:
        return {
            "max_hot_share_shift": self.max_hot_share_shift,
            "max_mql_rate_shift": self.max_mql_rate_shift,
            "max_band_change_share": self.max_band_change_share,
        }


class GateFailed(RuntimeError):
    """A quality gate failed: nothing downstream of it may run."""

    def __init__(self, result: GateResult) -> None:
        reasons = "; ".join(result.failures) or "no details"
        super().__init__(f"quality gate '{result.checkpoint}' failed: {reasons}")
        self.result = result


@dataclass
class GateResult:
    checkpoint: str
    success: bool
    evaluated: int = 0
    failures: list[str] = field(default_factory=list)  # critical: the gate fails
    warnings: list[str] = field(default_factory=list)  # logged and kept, not fatal
    approved: list[str] = field(default_factory=list)  # drift the run's approval let through
    data_docs: str | None = None
    as_of: str | None = None
    baseline_as_of: str | None = None
    scope: dict[str, Any] = field(default_factory=dict)


def _describe(outcome: Any) -> str:
    config = outcome.expectation_config
    kwargs = {
        k: v for k, v in config.kwargs.items() if k not in ("batch_id", "unexpected_rows_query")
    }
    label = (
        config.description or f"{config.type}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    )
    name = (config.meta or {}).get("name")
    result = outcome.result or {}
    observed = result.get("observed_value")
    unexpected = result.get("unexpected_count")
    details = []
    if config.type == "unexpected_rows_expectation" and observed is not None:
        details.append(f"{observed} offending rows")
    elif observed is not None:
        details.append(f"observed {observed!r}")
    if unexpected:
        details.append(f"{unexpected} unexpected")
        examples = result.get("partial_unexpected_list") or []
        if examples:
            details.append(f"e.g. {', '.join(repr(x) for x in examples[:3])}")
    if outcome.exception_info and outcome.exception_info.get("raised_exception"):
        details.append(f"error: {outcome.exception_info.get('exception_message')}")
    return (f"{name}: " if name else "") + label + (f" [{', '.join(details)}]" if details else "")


def run_checkpoint(
    name: str,
    warehouse: WarehouseConfig,
    *,
    parameters: dict[str, Any] | None = None,
    settings: QualitySettings | None = None,
    approve_drift: bool = False,
    context_dir: Path | None = None,
) -> GateResult:
    """Run the named checkpoint of the file context against the warehouse and judge it by
    severity: a failed ``critical`` expectation fails the gate, a ``warning`` or ``info`` one
    is logged and kept; a failed drift expectation passes only when the run is approved."""
    settings = settings or QualitySettings()
    os.environ["GX_ANALYTICS_ENABLED"] = "False"
    os.environ["WAREHOUSE_URL"] = warehouse.sqlalchemy_url()
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # INFO is per-function noise
    import great_expectations as gx

    context = gx.get_context(mode="file", context_root_dir=str(context_dir or gx_context_dir()))
    checkpoint = context.checkpoints.get(name)
    run = checkpoint.run(expectation_parameters=parameters or {})
    result = GateResult(checkpoint=name, success=True)
    for validation in run.run_results.values():
        for outcome in validation.results:
            result.evaluated += 1
            if outcome.success:
                continue
            config = outcome.expectation_config
            meta = config.meta or {}
            default = getattr(config.severity, "value", config.severity) or "critical"
            severity = settings.severity.get(meta.get("name", ""), str(default))
            described = _describe(outcome)
            if severity != "critical":
                result.warnings.append(f"{severity}: {described}")
            elif meta.get(DRIFT) and approve_drift:
                result.approved.append(described)
            else:
                result.failures.append(described)
    result.success = not result.failures
    sites = context.get_docs_sites_urls()
    if sites:
        result.data_docs = sites[0].get("site_url")
    log.info(
        "quality gate %s: %s, %d expectations, %d failed, %d warnings%s; Data Docs: %s",
        name,
        "passed" if result.success else "FAILED",
        result.evaluated,
        len(result.failures),
        len(result.warnings),
        f", {len(result.approved)} drift failures approved" if result.approved else "",
        result.data_docs,
    )
    for failure in result.failures:
        log.error("quality gate %s: %s", name, failure)
    for warning in result.warnings:
        log.warning("quality gate %s: %s", name, warning)
    for approved in result.approved:
        log.warning("quality gate %s: APPROVED drift: %s", name, approved)
    return result


def _record(warehouse: WarehouseConfig, result: GateResult, run_id: str | None) -> None:
    """Keep the verdict (failures, warnings, approvals) in ``lead_scoring_ops.quality_gate_runs``:
    the drift guard's baseline is the newest passing score gate there."""
    with connect(warehouse) as conn:
        conn.execute(
            f"insert into {OPS}.quality_gate_runs (checkpoint, run_id, as_of_date, "
            "baseline_as_of_date, passed, approved, evaluated, failures, warnings, data_docs) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                result.checkpoint,
                run_id,
                result.as_of,
                result.baseline_as_of,
                result.success,
                bool(result.approved) and result.success,
                result.evaluated,
                json.dumps(result.failures),
                json.dumps(result.warnings + [f"approved: {a}" for a in result.approved]),
                result.data_docs,
            ),
        )


def raw_gate(
    warehouse: WarehouseConfig,
    *,
    run_id: str | None,
    reference: datetime | None = None,
    settings: QualitySettings | None = None,
    context_dir: Path | None = None,
) -> GateResult:
    """Validate the rows the run's extraction loaded (all of its committed loads; without a
    run id, the newest load of each source). Raises ``GateFailed`` so dbt never reads them.
    ``reference``: the end of the run's data interval, for freshness (default: now)."""
    settings = settings or QualitySettings.from_env()
    reference = reference or datetime.now(UTC)
    with connect(warehouse, autocommit=True) as conn:
        ensure_quality_schema(conn)
        scope = raw_scope(conn, run_id)
        create_raw_views(conn, scope, reference)
    log.info(
        "raw gate: %d loads of run %s (%s); freshness measured from %s",
        len(scope.batch_ids),
        run_id or "(newest per source)",
        ", ".join(scope.sources) or "none",
        reference.isoformat(),
    )
    result = run_checkpoint(
        RAW_CHECKPOINT,
        warehouse,
        parameters=settings.raw_parameters(),
        settings=settings,
        context_dir=context_dir,
    )
    result.scope = {"batch_ids": scope.batch_ids, "sources": scope.sources}
    _record(warehouse, result, run_id)
    if not result.success:
        raise GateFailed(result)
    return result


def score_gate(
    warehouse: WarehouseConfig,
    as_of: date,
    *,
    run_id: str | None = None,
    approve_drift: bool = False,
    full_check: bool = False,
    settings: QualitySettings | None = None,
    context_dir: Path | None = None,
) -> GateResult:
    """Validate the scores of one as-of date, and their drift from the last run that passed;
    raise ``GateFailed`` so the sync never runs. The whole set is checked (counts, keys, every
    model scoring every lead, drift), and row by row the scores the date's build changed
    (every score with ``full_check``). ``approve_drift`` lets a run whose only failures are
    drift beyond the bounds through (an intended ruleset change)."""
    settings = settings or QualitySettings.from_env()
    crm = sync_target_from_env()
    with connect(warehouse, autocommit=True) as conn:
        ensure_quality_schema(conn)
        baseline = baseline_as_of(conn, as_of)
        ledger = baseline is None and ledger_baseline(conn, crm)
        create_score_views(
            conn, as_of, baseline, ledger_crm=crm if ledger else None, full=full_check
        )
    log.info(
        "score gate: scores as of %s (row checks on %s); drift against %s",
        as_of.isoformat(),
        "every score" if full_check else "the scores this date's build changed",
        baseline.isoformat()
        if baseline
        else f"what {crm} was last sent (no earlier day passed; the sync ledger)"
        if ledger
        else "nothing (no earlier run passed and the CRM was never sent scores)",
    )
    result = run_checkpoint(
        SCORES_CHECKPOINT,
        warehouse,
        parameters=settings.drift_parameters(),
        settings=settings,
        approve_drift=approve_drift,
        context_dir=context_dir,
    )
    result.as_of = as_of.isoformat()
    result.baseline_as_of = baseline.isoformat() if baseline else None
    _record(warehouse, result, run_id)
    if not result.success:
        raise GateFailed(result)
    return result


def summary(result: GateResult) -> dict[str, Any]:
    """The task's XCom: the verdict, counts and the Data Docs path (no secret, no rows)."""
    return asdict(result)
