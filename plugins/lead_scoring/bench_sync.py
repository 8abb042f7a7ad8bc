"""Benchmark of the reverse-ETL sync (``make bench``; ``--only sync`` runs it alone).

The CRM sandbox runs in its own process with HubSpot's Professional limit (190 requests per
rolling 10 s; ``--sync-rate-limit``). The portal holds ``--sync-contacts`` contacts (default
100,000) and the warehouse one score per contact and scoring model (two models). Each run
changes every score, so every contact has a change, and one sync process (its own peak RSS)
sends them with the product's defaults (batches of 100, 8 in flight, the client paced to the
same tier), each run starting with the server's 10-second window empty, as a scheduled run
would. The figure is contacts accepted per second of the whole sync (reading the changes,
the property set-up, writing ahead and recording every answer), against the ceiling the rate
limit allows (190 requests x 100 contacts per 10 s = 1,900 contacts/s). Target: at least 90%
of it, with no 429 caused by our own pacing. Then one more sync with nothing changed, which
must make no write request. Median of ``--sync-runs`` runs, with min and max.

The scores are written straight into a table shaped like ``fct_lead_scores``: the sync reads
only that table and the scoring models, and the scoring build has its own benchmark.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from lead_scoring.config import WarehouseConfig

SECTION = "## Sync: changed leads at the CRM's rate limit"
AS_OF = date(2026, 6, 1)
MODELS = (("default", "ls"), ("enterprise", "ls_ent"))
WINDOW_SECONDS = 10


def child_sync(warehouse: dict[str, Any], url: str, token: str, rate_limit: int) -> dict[str, Any]:
    """One sync run, as the DAG's task runs it (separate process: its RSS is its own)."""
    from lead_scoring.bench import _rss_mb
    from lead_scoring.crm.client import HubSpotClient
    from lead_scoring.sync.hubspot import sync_scores

    with HubSpotClient(url, token, rate_limit=rate_limit) as client:
        result = sync_scores(WarehouseConfig(**warehouse), client, AS_OF, max_changes=0)
    return {
        "seconds": result.seconds,
        "changed": result.changed,
        "sent": result.sent,
        "accepted": result.accepted,
        "failed": result.failed + result.not_found,
        "requests": result.requests,
        "retries": result.retries,
        "rate_limited": result.rate_limited,
        "peak_rss_mb": _rss_mb(),
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_sandbox(root: Path, token: str, rate_limit: int) -> tuple[subprocess.Popen[str], str]:
    for leftover in root.glob("portal.db*"):
        leftover.unlink()
    port = _free_port()
    env = dict(os.environ, LEAD_SCORING_SANDBOX_TOKEN=token)
    process = subprocess.Popen(
        [sys.executable, "-m", "lead_scoring", "sandbox", "--port", str(port),
         "--db", str(root / "portal.db"), "--rate-limit", str(rate_limit)],
        env=env, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    from lead_scoring.sandbox.admin import SandboxAdmin

    deadline = time.monotonic() + 60
    with SandboxAdmin(url, token) as admin:
        while not admin.ping():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("the CRM sandbox did not start")
            time.sleep(0.2)
    return process, url


def _seed(url: str, token: str, contacts: int) -> None:
    from lead_scoring.sandbox.admin import SandboxAdmin

    with SandboxAdmin(url, token, timeout=300) as admin:
        for start in range(0, contacts, 5000):
            admin.seed_contacts(
                [
                    {
                        "properties": {"email": f"lead{i}@example.com", "lastname": f"Lead {i}"},
                        "createdAt": "2026-01-01T00:00:00.000Z",
                    }
                    for i in range(start, min(contacts, start + 5000))
                ]
            )


def _setup_scores(warehouse: WarehouseConfig, contacts: int) -> None:
    """One score per contact (ids 1..n, as the sandbox numbers seeded contacts) and model."""
    from lead_scoring.warehouse import MARTS, OPS, RULES, connect

    with connect(warehouse, autocommit=True) as conn:
        conn.execute(f"drop schema if exists {MARTS}, {RULES}, {OPS} cascade")
        conn.execute(f"create schema {MARTS}; create schema {RULES}")
        conn.execute(
            f"create table {RULES}.scoring_models "
            "(scoring_model_id text primary key, crm_property_prefix text not null)"
        )
        conn.cursor().executemany(f"insert into {RULES}.scoring_models values (%s, %s)", MODELS)
        conn.execute(
            f"""
            create table {MARTS}.fct_lead_scores as
            select
                lead.id::text as lead_id,
                model.scoring_model_id,
                %(as_of)s::date as as_of_date,
                (lead.id * 7 + length(model.scoring_model_id)) %% 101 as total_score,
                'cold'::text as band,
                'B'::text as fit_grade,
                false as is_mql,
                null::date as mql_date,
                false as is_sql,
                null::date as sql_date,
                'Pricing page viewed (+10); Job title: VP (+15)'::text as top_reasons,
                'bench-1'::text as ruleset_version,
                %(scored_at)s::timestamptz as scored_at
            from generate_series(1, %(contacts)s) as lead (id)
            cross join {RULES}.scoring_models as model
            """,
            {"as_of": AS_OF, "contacts": contacts, "scored_at": datetime.now(UTC)},
        )
        _rescore(conn, MARTS)


def _rescore(conn: Any, marts: str) -> None:
    """Every score moves by one point (so every contact has a change); bands follow."""
    conn.execute(
        f"""
        update {marts}.fct_lead_scores set
            total_score = (total_score + 1) %% 101,
            band = case when (total_score + 1) %% 101 >= 70 then 'hot'
                when (total_score + 1) %% 101 >= 40 then 'warm' else 'cold' end,
            is_mql = (total_score + 1) %% 101 >= 70,
            mql_date = case when (total_score + 1) %% 101 >= 70 then %s::date end
        """,
        (AS_OF,),
    )
    conn.execute(f"analyze {marts}.fct_lead_scores")


def _quiet_window() -> None:
    """Let the server's rolling window empty, so each run starts as a scheduled run would and
    not inside the previous run's window (the client would rightly wait for it)."""
    time.sleep(WINDOW_SECONDS + 1)


def _child(warehouse: WarehouseConfig, url: str, token: str, rate_limit: int) -> dict[str, Any]:
    from dataclasses import asdict

    env = dict(os.environ, LEAD_SCORING_BENCH_WAREHOUSE=json.dumps(asdict(warehouse)))
    output = subprocess.run(
        [sys.executable, "-m", "lead_scoring.bench", "--child", "sync", url, token,
         str(rate_limit)],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return dict(json.loads(output.strip().splitlines()[-1]))


def _write_requests(url: str, token: str) -> tuple[int, int, int]:
    """Batch-update calls and records the sandbox saw so far, and its 429 answers."""
    from lead_scoring.sandbox.admin import SandboxAdmin, write_requests

    with SandboxAdmin(url, token) as admin:
        stats = admin.stats()
    limited = sum(int(r["calls"]) for r in stats["requests"] if int(r["status"]) == 429)
    return (*write_requests(stats), limited)


def run(contacts: int, runs: int, rate_limit: int, out: Path) -> dict[str, Any]:
    from lead_scoring.config import local_dir
    from lead_scoring.runtime.embedded import EmbeddedPostgres
    from lead_scoring.warehouse import MARTS, connect

    root = local_dir() / "bench" / "sync"
    root.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(16)
    figures: list[dict[str, Any]] = []
    with EmbeddedPostgres(root / "pgdata") as warehouse:
        process, url = _start_sandbox(root, token, rate_limit)
        try:
            print(f"sync: seeding the portal with {contacts:,} contacts", flush=True)
            _seed(url, token, contacts)
            _setup_scores(warehouse, contacts)
            for attempt in range(1, runs + 1):
                if attempt > 1:
                    with connect(warehouse, autocommit=True) as conn:
                        _rescore(conn, MARTS)
                _quiet_window()
                before = _write_requests(url, token)
                print(f"sync run {attempt}/{runs}: {contacts:,} changed contacts", flush=True)
                figure = _child(warehouse, url, token, rate_limit)
                after = _write_requests(url, token)
                figure["write_calls"] = after[0] - before[0]
                figure["server_429"] = after[2] - before[2]
                figure["records_per_s"] = figure["accepted"] / figure["seconds"]
                figures.append(figure)
                print(f"  {figure}", flush=True)
            _quiet_window()
            before = _write_requests(url, token)
            unchanged = _child(warehouse, url, token, rate_limit)
            unchanged["write_calls"] = _write_requests(url, token)[0] - before[0]
            print(f"sync with nothing changed: {unchanged}", flush=True)
        finally:
            process.terminate()
            process.wait(timeout=30)
    results = {
        "contacts": contacts,
        "rate_limit": rate_limit,
        "runs": figures,
        "unchanged": unchanged,
    }
    _write_report(results, out)
    return results


def _write_report(results: dict[str, Any], out: Path) -> None:
    from lead_scoring.bench import machine_description, replace_section

    runs = results["runs"]
    rate_limit = results["rate_limit"]
    ceiling = rate_limit * 100 / 10

    def spread(key: str, fmt: str = ",.0f") -> str:
        values = [r[key] for r in runs]
        return f"{statistics.median(values):{fmt}} ({min(values):{fmt}} - {max(values):{fmt}})"

    rate = statistics.median(r["records_per_s"] for r in runs)
    unchanged = results["unchanged"]
    lines = [
        SECTION,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine_description()}; embedded "
        f"PostgreSQL (pgserver), CRM sandbox in its own process on loopback at {rate_limit} "
        "requests per rolling 10 s. Written by `make bench` (`python -m lead_scoring.bench "
        "--only sync`).",
        "",
        f"{results['contacts']:,} contacts changed in every run (two scoring models, all ten "
        f"properties each), sent by one sync process paced to the same tier; median of "
        f"{len(runs)} runs (min - max). Ceiling: {rate_limit} requests x 100 contacts per 10 s "
        f"= {ceiling:,.0f} contacts/s.",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| contacts accepted per second | {spread('records_per_s')} |",
        f"| of the rate-limit ceiling | {rate / ceiling:.0%} |",
        f"| seconds per sync | {spread('seconds', ',.1f')} |",
        f"| requests per sync (batch updates) | {spread('requests')} ({spread('write_calls')}) |",
        f"| 429 answers (sandbox's count) | {sum(r['server_429'] for r in runs)} |",
        f"| retries | {sum(r['retries'] for r in runs)} |",
        f"| peak RSS of the sync process (MB) | {spread('peak_rss_mb')} |",
        f"| requests (write requests) of a sync with nothing changed | "
        f"{unchanged['requests']} ({unchanged['write_calls']}) |",
        f"| seconds of a sync with nothing changed | {unchanged['seconds']:.1f} |",
        "",
    ]
    replace_section(out, SECTION, "\n".join(lines))
