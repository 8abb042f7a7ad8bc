"""Run a Great Expectations checkpoint as a gate: pass, or stop the pipeline with the reasons.

Great Expectations is imported here, inside the call, never when a DAG file is parsed. The
connection string reaches GX only through the ``WAREHOUSE_URL`` environment variable of the
running task (the file context holds the placeholder), and GX's own anonymous usage statistics
are switched off.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from lead_scoring.config import WarehouseConfig, gx_context_dir
from lead_scoring.quality.context import SCORES_CHECKPOINT

log = logging.getLogger(__name__)


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
    failures: list[str] = field(default_factory=list)
    data_docs: str | None = None


def _describe(outcome: Any) -> str:
    config = outcome.expectation_config
    kwargs = {
        k: v for k, v in config.kwargs.items() if k not in ("batch_id", "unexpected_rows_query")
    }
    label = (
        config.description or f"{config.type}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    )
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
    if outcome.exception_info and outcome.exception_info.get("raised_exception"):
        details.append(f"error: {outcome.exception_info.get('exception_message')}")
    return f"{label}" + (f" [{', '.join(details)}]" if details else "")


def run_checkpoint(
    name: str,
    warehouse: WarehouseConfig,
    *,
    batch_parameters: dict[str, Any] | None = None,
    context_dir: Path | None = None,
) -> GateResult:
    """Run the named checkpoint of the file context against the warehouse."""
    os.environ["GX_ANALYTICS_ENABLED"] = "False"
    os.environ["WAREHOUSE_URL"] = warehouse.sqlalchemy_url()
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # INFO is per-function noise
    import great_expectations as gx
    from great_expectations.exceptions.exceptions import NoAvailableBatchesError

    context = gx.get_context(mode="file", context_root_dir=str(context_dir or gx_context_dir()))
    checkpoint = context.checkpoints.get(name)
    try:
        run = checkpoint.run(batch_parameters=batch_parameters)
    except NoAvailableBatchesError:
        return GateResult(
            checkpoint=name,
            success=False,
            failures=[f"no rows to validate for {batch_parameters or 'the whole table'}"],
        )
    result = GateResult(checkpoint=name, success=bool(run.success))
    for validation in run.run_results.values():
        for outcome in validation.results:
            result.evaluated += 1
            if not outcome.success:
                result.failures.append(_describe(outcome))
    sites = context.get_docs_sites_urls()
    if sites:
        result.data_docs = sites[0].get("site_url")
    log.info(
        "quality gate %s: %s, %d expectations, %d failed; Data Docs: %s",
        name,
        "passed" if result.success else "FAILED",
        result.evaluated,
        len(result.failures),
        result.data_docs,
    )
    for failure in result.failures:
        log.error("quality gate %s: %s", name, failure)
    return result


def score_gate(
    warehouse: WarehouseConfig, as_of: date, *, context_dir: Path | None = None
) -> GateResult:
    """Validate the scores of one as-of date; raise ``GateFailed`` so the sync never runs."""
    result = run_checkpoint(
        SCORES_CHECKPOINT,
        warehouse,
        batch_parameters={"year": as_of.year, "month": as_of.month, "day": as_of.day},
        context_dir=context_dir,
    )
    if not result.success:
        raise GateFailed(result)
    return result
