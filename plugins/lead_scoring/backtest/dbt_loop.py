"""Score one backtest workspace as of many cutoffs in one process (``python -m`` this module).

A backtest runs the scoring models once per cutoff. Starting dbt for each would pay its start-up
and a full parse every time (a new ``as_of`` var invalidates partial parsing), which is most of
a small warehouse's run. Here the project is parsed once and the manifest is handed to each
``dbtRunner`` invocation (dbt's documented way to skip re-parsing); the ``as_of`` var is read
when each model is compiled, so every invocation scores its own date. It runs as a child
process so a dbt failure cannot take the backtest down, and prints one line per cutoff.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", required=True)
    parser.add_argument("--select", required=True)
    parser.add_argument("cutoffs", nargs="+")
    args = parser.parse_args()

    from dbt.cli.main import dbtRunner

    common = [
        "--project-dir",
        args.project,
        "--profiles-dir",
        args.project,
        "--target-path",
        f"{args.project}/target",
        "--log-path",
        f"{args.project}/target/logs",
        "--quiet",
    ]
    first = json.dumps({"as_of": args.cutoffs[0]})
    parsed = dbtRunner().invoke(["parse", "--vars", first, *common])
    if not parsed.success:
        print(f"error: dbt parse failed: {parsed.exception}", flush=True)
        return 1
    runner = dbtRunner(manifest=parsed.result)  # type: ignore[arg-type]  # parse -> Manifest
    for cutoff in args.cutoffs:
        began = time.monotonic()
        done = runner.invoke(
            [
                "run",
                "--select",
                *args.select.split(),
                "--vars",
                json.dumps({"as_of": cutoff}),
                *common,
            ]
        )
        if not done.success:
            results: Any = done.result or []
            failures = [
                f"{r.node.unique_id}: {r.message}"
                for r in results
                if getattr(r, "status", None) not in ("success", "pass")
            ]
            detail = "; ".join(failures) or str(done.exception)
            print(f"error: dbt run as of {cutoff} failed: {detail}", flush=True)
            return 1
        print(f"scored {cutoff} {time.monotonic() - began:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
