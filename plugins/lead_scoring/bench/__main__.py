"""``python -m lead_scoring.bench`` (what ``make bench`` runs)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from lead_scoring.bench import dag, harness, report


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "").replace(",", "")) for part in text.split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"sizes are contact counts, like 10000,100000: {text!r}"
        ) from None
    if not sizes or min(sizes) < 100:
        raise argparse.ArgumentTypeError(f"each size must be at least 100 contacts: {text!r}")
    return sizes


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lead_scoring.bench",
        description=harness.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--size",
        type=_sizes,
        default=[10_000],
        help="contacts, about 50 events each; a comma list runs each (default 10000)",
    )
    parser.add_argument(
        "--runs", type=_count, default=3, help="runs per size (default 3; 0 with --dag: DAG only)"
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("REV_A", "REV_B"),
        help="measure two git revisions side by side (runs interleaved, same data); "
        "WORKTREE is the working tree",
    )
    parser.add_argument(
        "--rate-limit",
        type=_positive,
        default=190,
        help="the sandbox's and the sync's requests per 10 s (default 190, HubSpot Pro)",
    )
    parser.add_argument(
        "--fresh-data", action="store_true", help="regenerate the synthetic data even if cached"
    )
    parser.add_argument(
        "--dag",
        action="store_true",
        help="after each size's runs, time the whole DAG too (airflow dags test, full data, "
        "then after 1%% new events through the sources)",
    )
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    return parser


def _write_results(
    path: Path,
    size: int,
    revisions: list[harness.Revision],
    by_revision: dict[str, list[harness.Cycle]],
) -> None:
    cycles = {label: [asdict(c) for c in runs] for label, runs in by_revision.items()}
    payload = {"size": size, "revisions": {r.label: r.commit for r in revisions}, "cycles": cycles}
    path.write_text(json.dumps(payload, indent=1, default=str))
    harness._say(f"  figures so far: {path}")


def main(argv: list[str] | None = None) -> int:
    from lead_scoring.config import local_dir
    from lead_scoring.runtime.embedded import EmbeddedPostgres

    args = parser().parse_args(argv)
    command = "python -m lead_scoring.bench " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    try:
        revisions = (
            [harness.checkout(rev) for rev in args.compare]
            if args.compare
            else [harness.working_tree()]
        )
    except harness.BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    if args.dag and args.compare:
        print("bench: --dag times the working tree's DAG; it cannot --compare", file=sys.stderr)
        return 2
    if not args.runs and not args.dag:
        print("bench: --runs 0 measures nothing without --dag", file=sys.stderr)
        return 2
    if args.compare and revisions[0].commit == revisions[1].commit:
        print("bench: --compare needs two different revisions", file=sys.stderr)
        return 2
    work = local_dir() / "bench"
    results_dir = work / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        server = EmbeddedPostgres(work / "pgdata")
        with server as warehouse:
            for size in args.size:
                data = harness.dataset(size, fresh=args.fresh_data)
                by_revision: dict[str, list[harness.Cycle]] = {r.label: [] for r in revisions}
                # Every run's figures are written as soon as it ends: an interrupted
                # benchmark keeps the runs it finished.
                results = results_dir / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{size}.json"
                for attempt in range(1, args.runs + 1):
                    for revision in revisions:
                        harness._say(
                            f"{size:,} contacts, run {attempt}/{args.runs}, "
                            f"{revision.label} ({revision.commit})"
                        )
                        by_revision[revision.label].append(
                            harness.cycle(
                                revision, data, warehouse, rate_limit=args.rate_limit, work=work
                            )
                        )
                        _write_results(results, size, revisions, by_revision)
                generated = (
                    "re-used from an earlier run"
                    if data.generated_seconds is None
                    else f"generated in {data.generated_seconds:,.0f} s"
                )
                if args.dag:
                    harness._say(f"{size:,} contacts, the whole DAG")
                    dag_result = dag.dag_cycle(
                        data,
                        warehouse,
                        server.airflow_metadata(fresh=True),
                        rate_limit=args.rate_limit,
                        work=work,
                    )
                    (results.with_suffix(".dag.json")).write_text(
                        json.dumps(dag_result, indent=1, default=str)
                    )
                    heading, section = dag.dag_section(data, dag_result, command=command)
                    report.replace_section(args.out, heading, section)
                    print("\n" + section)
                for revision in revisions if args.runs else []:
                    heading, section = report.size_section(
                        data,
                        by_revision[revision.label],
                        rate_limit=args.rate_limit,
                        revision=f"{revision.label} ({revision.commit})",
                        command=command,
                        generated=generated,
                    )
                    if not args.compare:
                        report.replace_section(args.out, heading, section)
                    print("\n" + section)
                if args.compare and args.runs:
                    heading, section = report.compare_section(
                        data, by_revision, rate_limit=args.rate_limit, command=command
                    )
                    report.replace_section(args.out, heading, section)
                    print("\n" + section)
    except harness.BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    harness._say(f"done in {time.monotonic() - started:,.0f} s; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
