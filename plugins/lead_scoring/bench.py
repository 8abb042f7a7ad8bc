"""Benchmarks, written to BENCHMARKS.md (``make bench``): the extract side here, the scoring
build in ``lead_scoring.bench_scoring``, the CRM sync in ``lead_scoring.bench_sync``
(``--only sources|scoring|sync`` runs one of them).

Measured on the embedded PostgreSQL and the CRM sandbox, each stage in its own Python process
so its peak RSS is its own:

- **contacts extraction memory**: a full refresh (list endpoint, 100 per page) of portals of
  growing size into ``raw_crm.contacts``; the peak RSS must stay flat as the portal grows
  (target: under 300 MB at 100k contacts). The sandbox runs with its rate limit lifted, so
  the figure is our cost, not HubSpot's throttle.
- **load rate against plain COPY**: the synthetic Segment export loaded by the product
  (read, parse, validate, COPY into a temp table, merge, quarantine, file manifest) against a
  plain ``COPY`` of the very rows it stores into an identical table (the floor). Target: at
  least half the floor's rate. Median of ``--runs`` runs, with min and max.

Sizes are flags (``--contacts``, ``--events-contacts``); ``make bench`` uses the defaults.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SOURCES_SECTION = "## Sources: extraction memory and load rate"


def _rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child
    would report the peak of the parent it was forked from."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------- child stages
def child_extract(warehouse: dict[str, Any], url: str, token: str) -> dict[str, Any]:
    from lead_scoring.config import WarehouseConfig
    from lead_scoring.crm.client import HubSpotClient
    from lead_scoring.extract import jobs

    started = time.monotonic()
    with HubSpotClient(url, token) as client:
        result = jobs.extract_contacts(WarehouseConfig(**warehouse), client, full_refresh=True)
    seconds = time.monotonic() - started
    return {
        "records": result.rows_read,
        "seconds": seconds,
        "records_per_s": result.rows_read / seconds,
        "peak_rss_mb": _rss_mb(),
    }


def child_load(warehouse: dict[str, Any], folder: str) -> dict[str, Any]:
    from lead_scoring.config import WarehouseConfig
    from lead_scoring.extract import jobs

    started = time.monotonic()
    result = jobs.load_web_events(WarehouseConfig(**warehouse), folder, full_refresh=True)
    seconds = time.monotonic() - started
    return {
        "records": result.rows_read,
        "inserted": result.rows_inserted,
        "seconds": seconds,
        "records_per_s": result.rows_read / seconds,
        "peak_rss_mb": _rss_mb(),
    }


def _child(stage: str, warehouse: dict[str, Any], *args: str) -> dict[str, Any]:
    # The warehouse settings (with the password) go by environment, never on a command line.
    output = subprocess.run(
        [sys.executable, "-m", "lead_scoring.bench", "--child", stage, *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "LEAD_SCORING_BENCH_WAREHOUSE": json.dumps(warehouse)},
    )
    return dict(json.loads(output.stdout.strip().splitlines()[-1]))


# ---------------------------------------------------------------------- the floor
def plain_copy(warehouse: Any) -> dict[str, Any]:
    """COPY the rows the load stored, pre-rendered as COPY text, into an identical table."""
    from lead_scoring.warehouse import connect

    with tempfile.TemporaryFile() as buffer, connect(warehouse) as conn:
        with conn.cursor().copy(
            "copy (select message_id, event_type, event_name, anonymous_id, user_id, "
            "event_timestamp, raw, source_file, source_line, source_format, batch_id, loaded_at "
            "from raw_analytics.web_events) to stdout"
        ) as copy:
            for block in copy:
                buffer.write(block)
        conn.execute("drop table if exists public.copy_floor")
        conn.execute("create table public.copy_floor (like raw_analytics.web_events including all)")
        conn.commit()
        rows = conn.execute("select count(*) from raw_analytics.web_events").fetchone()
        started = time.monotonic()
        with conn.cursor().copy(
            "copy public.copy_floor (message_id, event_type, event_name, anonymous_id, user_id, "
            "event_timestamp, raw, source_file, source_line, source_format, batch_id, loaded_at) "
            "from stdin"
        ) as copy:
            buffer.seek(0)
            while block := buffer.read(1 << 20):
                copy.write(block)
        conn.commit()
        seconds = time.monotonic() - started
        conn.execute("drop table public.copy_floor")
        conn.commit()
    count = int(rows[0]) if rows else 0
    return {"records": count, "seconds": seconds, "records_per_s": count / seconds}


# ---------------------------------------------------------------------- orchestration
def _reset(warehouse: Any) -> None:
    from lead_scoring.warehouse import connect

    with connect(warehouse, autocommit=True) as conn:
        conn.execute("drop schema if exists raw_crm, raw_analytics, lead_scoring_ops cascade")


def _seed_portal(sandbox: Any, contacts: int, already: int) -> None:
    from lead_scoring.sandbox.admin import SandboxAdmin
    from lead_scoring.synth.generator import SynthConfig, make_contact

    config = SynthConfig(contacts=contacts, seed=42, dirty_share=0.0)
    with SandboxAdmin(sandbox.url, sandbox.token, timeout=300) as admin:
        chunk: list[dict[str, Any]] = []
        for index in range(already, contacts):
            chunk.append(make_contact(config, index).contact)
            if len(chunk) == 2000:
                admin.seed_contacts(chunk)
                chunk.clear()
        if chunk:
            admin.seed_contacts(chunk)


def _median(runs: list[dict[str, Any]], key: str) -> tuple[float, float, float]:
    values = [r[key] for r in runs]
    return statistics.median(values), min(values), max(values)


def run(sizes: list[int], events_contacts: int, runs: int, out: Path) -> dict[str, Any]:
    from lead_scoring.config import local_dir
    from lead_scoring.runtime.embedded import EmbeddedPostgres
    from lead_scoring.sandbox import Sandbox
    from lead_scoring.synth import SynthConfig, write_dataset

    root = local_dir() / "bench"
    shutil.rmtree(root / "portal.db", ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    for leftover in root.glob("portal.db*"):
        leftover.unlink()
    results: dict[str, Any] = {"extract": [], "load": [], "copy": []}
    with EmbeddedPostgres(root / "pgdata") as warehouse:
        config = asdict(warehouse)
        with Sandbox(
            port=0, token=secrets.token_urlsafe(16), db_path=root / "portal.db", rate_limit=10**6
        ) as sandbox:
            seeded = 0
            for size in sorted(sizes):
                print(f"seeding the portal to {size:,} contacts", flush=True)
                _seed_portal(sandbox, size, seeded)
                seeded = size
                _reset(warehouse)
                print(f"extracting {size:,} contacts (full refresh)", flush=True)
                figure = _child("extract", config, sandbox.url, sandbox.token)
                figure["portal_contacts"] = size
                results["extract"].append(figure)
                print(f"  {figure}", flush=True)

            dataset = root / "dataset"
            print(f"writing a synthetic export for {events_contacts:,} contacts", flush=True)
            write_dataset(
                SynthConfig(contacts=events_contacts, seed=7, dirty_share=0.0),
                crm_url=sandbox.url,
                token=sandbox.token,
                out_dir=dataset,
            )
        for attempt in range(1, runs + 1):
            _reset(warehouse)
            print(f"load run {attempt}/{runs}", flush=True)
            load = _child("load", config, str(dataset / "events"))
            results["load"].append(load)
            floor = plain_copy(warehouse)
            results["copy"].append(floor)
            print(f"  load {load}\n  copy {floor}", flush=True)
    _write_report(results, out, runs)
    return results


def _write_report(results: dict[str, Any], out: Path, runs: int) -> None:
    machine = machine_description()
    lines = [
        SOURCES_SECTION,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine}; embedded PostgreSQL "
        "(pgserver), CRM sandbox on loopback with its rate limit lifted. Written by "
        "`make bench` (`python -m lead_scoring.bench`).",
        "",
        "| contacts in the portal | extracted | seconds | records/s | peak RSS (MB) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for figure in results["extract"]:
        lines.append(
            f"| {figure['portal_contacts']:,} | {figure['records']:,} | {figure['seconds']:.1f} "
            f"| {figure['records_per_s']:,.0f} | {figure['peak_rss_mb']:.0f} |"
        )
    load_rate = _median(results["load"], "records_per_s")
    copy_rate = _median(results["copy"], "records_per_s")
    rss = _median(results["load"], "peak_rss_mb")
    records = results["load"][0]["records"]
    lines += [
        "",
        f"Web events: {records:,} Segment events in day files; median of {runs} runs (min - max).",
        "",
        "| stage | records/s | of plain COPY |",
        "|---|---:|---:|",
        f"| product load (parse, validate, COPY, merge, manifest) | {load_rate[0]:,.0f} "
        f"({load_rate[1]:,.0f} - {load_rate[2]:,.0f}) | {load_rate[0] / copy_rate[0]:.0%} |",
        f"| plain COPY of the same rows (floor) | {copy_rate[0]:,.0f} "
        f"({copy_rate[1]:,.0f} - {copy_rate[2]:,.0f}) | 100% |",
        "",
        f"Peak RSS of the load process: {rss[0]:.0f} MB (min {rss[1]:.0f}, max {rss[2]:.0f}).",
        "",
    ]
    replace_section(out, SOURCES_SECTION, "\n".join(lines))


def machine_description() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def replace_section(out: Path, heading: str, section: str) -> None:
    """Put ``section`` (starting with ``heading``) in place of the old one, or at the end."""
    text = out.read_text() if out.exists() else "# Benchmarks\n\n"
    if heading in text:
        before, _, after = text.partition(heading)
        rest = after.split("\n## ", 1)
        text = before + section + ("\n## " + rest[1] if len(rest) > 1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    out.write_text(text)
    print(f"\nwritten to {out}\n\n{section}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lead_scoring.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument(
        "--contacts",
        default="10000,100000",
        help="portal sizes for the extraction memory figure (default 10000,100000)",
    )
    parser.add_argument(
        "--events-contacts",
        type=int,
        default=20_000,
        help="contacts whose web events make the load figure (default 20000, ~400k events)",
    )
    parser.add_argument("--runs", type=int, default=3, help="load runs (default 3)")
    parser.add_argument(
        "--only",
        choices=("sources", "scoring", "sync"),
        help="run one benchmark (default: all, in this order)",
    )
    parser.add_argument(
        "--scoring-contacts",
        type=int,
        default=100_000,
        help="contacts for the scoring benchmark (default 100000)",
    )
    parser.add_argument(
        "--scoring-reuse",
        action="store_true",
        help="re-use the scoring data an earlier run loaded (same size) instead of reloading",
    )
    parser.add_argument(
        "--scoring-sessions",
        type=float,
        default=12.0,
        help="web sessions per contact for the scoring benchmark (default 12, ~5M events)",
    )
    parser.add_argument(
        "--sync-contacts",
        type=int,
        default=100_000,
        help="changed contacts for the sync benchmark (default 100000)",
    )
    parser.add_argument("--sync-runs", type=int, default=3, help="sync runs (default 3)")
    parser.add_argument(
        "--sync-rate-limit",
        type=int,
        default=190,
        help="the sandbox's and the client's requests per 10 s (default 190)",
    )
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.child:
        stage, *rest = args.child
        warehouse = json.loads(os.environ["LEAD_SCORING_BENCH_WAREHOUSE"])
        if stage == "sync":
            from lead_scoring.bench_sync import child_sync

            figure = child_sync(warehouse, rest[0], rest[1], int(rest[2]))
        elif stage == "extract":
            figure = child_extract(warehouse, rest[0], rest[1])
        else:
            figure = child_load(warehouse, rest[0])
        print(json.dumps(figure))
        return 0
    if args.only in (None, "sources"):
        sizes = [int(s) for s in str(args.contacts).split(",") if s]
        run(sizes, args.events_contacts, args.runs, args.out)
    if args.only in (None, "scoring"):
        from lead_scoring import bench_scoring

        bench_scoring.run(
            args.scoring_contacts, args.scoring_sessions, args.out, reuse=args.scoring_reuse
        )
    if args.only in (None, "sync"):
        from lead_scoring import bench_sync

        bench_sync.run(args.sync_contacts, args.sync_runs, args.sync_rate_limit, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
