"""One Python stage of the benchmark, in a process of its own (``make bench`` starts it).

Run as a script, not imported: ``python stages.py <stage> <arguments as JSON>``. It imports
only the product's public entry points, so with ``PYTHONPATH`` pointing at another git
revision's ``plugins/`` folder it measures that revision's code (``--compare``). The warehouse
settings (with the password) and the CRM token come by environment, never on a command line.
The last line printed is the stage's figures as JSON; the parent reads the stage's peak RSS
from the kernel when the process ends (``wait4``), so the figure covers the stage's own
children too (the dbt process of the build stages).
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any


def _warehouse() -> Any:
    from lead_scoring.config import WarehouseConfig

    return WarehouseConfig(**json.loads(os.environ["LEAD_SCORING_BENCH_WAREHOUSE"]))


def _client(rate_limit: int | None = None) -> Any:
    from lead_scoring.crm.client import HubSpotClient

    url = os.environ["LEAD_SCORING_BENCH_CRM_URL"]
    token = os.environ["LEAD_SCORING_BENCH_CRM_TOKEN"]
    if rate_limit is None:
        return HubSpotClient(url, token)
    return HubSpotClient(url, token, rate_limit=rate_limit)


def _load_figures(result: Any) -> dict[str, Any]:
    return {
        "records": int(result.rows_read),
        "inserted": int(result.rows_inserted),
        "quarantined": int(result.rows_quarantined),
    }


def extract_contacts(_: dict[str, Any]) -> dict[str, Any]:
    from lead_scoring.extract import jobs

    with _client() as client:
        return _load_figures(jobs.extract_contacts(_warehouse(), client, full_refresh=True))


def extract_email_events(_: dict[str, Any]) -> dict[str, Any]:
    from lead_scoring.extract import jobs

    with _client() as client:
        return _load_figures(jobs.extract_email_events(_warehouse(), client))


def load_web_events(args: dict[str, Any]) -> dict[str, Any]:
    from lead_scoring.extract import jobs

    return _load_figures(jobs.load_web_events(_warehouse(), args["folder"], full_refresh=True))


def dbt_build(args: dict[str, Any]) -> dict[str, Any]:
    from lead_scoring.runtime.dbt_tools import build_as_of

    target = Path(args["target"])
    done = build_as_of(_warehouse(), target, date.fromisoformat(args["as_of"]))
    if done.returncode != 0:
        raise RuntimeError(f"dbt build failed:\n{done.stdout[-4000:]}")
    results = json.loads((target / "run_results.json").read_text())["results"]
    timed = [(str(r["unique_id"]), float(r["execution_time"])) for r in results]
    return {
        "nodes": len(timed),
        "model_seconds": sum(t for uid, t in timed if not uid.startswith("test.")),
        "test_seconds": sum(t for uid, t in timed if uid.startswith("test.")),
        "slowest": sorted(timed, key=lambda item: -item[1])[:5],
    }


def dbt_fixed_cost(args: dict[str, Any]) -> dict[str, Any]:
    """What a dbt run costs before it builds anything: start-up, (partial) parse and node
    selection, timed as a build that selects no node, in the daily build's target."""
    from lead_scoring.runtime.dbt_tools import run_dbt

    done = run_dbt(
        _warehouse(),
        Path(args["target"]),
        "build",
        "--select",
        "tag:lead_scoring_bench_selects_nothing",
        as_of=date.fromisoformat(args["as_of"]),
    )
    if done.returncode != 0:
        raise RuntimeError(f"dbt build of nothing failed:\n{done.stdout[-4000:]}")
    return {"reparsed": "Unable to do partial parsing" in done.stdout}


def _gate(result: Any) -> dict[str, Any]:
    return {"passed": bool(result.success), "failures": list(getattr(result, "failures", []))}


def raw_gate(args: dict[str, Any]) -> dict[str, Any]:
    from lead_scoring.quality.gates import GateFailed
    from lead_scoring.quality.gates import raw_gate as gate

    # freshness is measured from the end of the data interval of a run on the data's last day
    reference = datetime.fromisoformat(args["reference"])
    try:
        return _gate(gate(_warehouse(), run_id=None, reference=reference))
    except GateFailed as failed:
        return _gate(failed.result)


def score_gate(args: dict[str, Any]) -> dict[str, Any]:
    from lead_scoring.quality.gates import GateFailed
    from lead_scoring.quality.gates import score_gate as gate

    try:
        return _gate(gate(_warehouse(), date.fromisoformat(args["as_of"])))
    except GateFailed as failed:
        return _gate(failed.result)


def sync(args: dict[str, Any]) -> dict[str, Any]:
    from lead_scoring.sync.hubspot import sync_scores

    with _client(int(args["rate_limit"])) as client:
        result = sync_scores(
            _warehouse(),
            client,
            date.fromisoformat(args["as_of"]),
            max_changes=0,
            max_first_sync_leads=0,  # the benchmark's first sync writes every contact
        )
    return {
        "changed": int(result.changed),
        "sent": int(result.sent),
        "accepted": int(result.accepted),
        "failed": int(result.failed + result.not_found),
        "requests": int(result.requests),
        "retries": int(result.retries),
        "rate_limited": int(result.rate_limited),
    }


STAGES = {
    "extract_contacts": extract_contacts,
    "extract_email_events": extract_email_events,
    "load_web_events": load_web_events,
    "dbt_build": dbt_build,
    "dbt_fixed_cost": dbt_fixed_cost,
    "raw_gate": raw_gate,
    "score_gate": score_gate,
    "sync": sync,
}


def main(argv: list[str]) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    stage, arguments = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    started = time.monotonic()
    figures = STAGES[stage](arguments)
    figures["seconds"] = time.monotonic() - started
    print(json.dumps(figures, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
