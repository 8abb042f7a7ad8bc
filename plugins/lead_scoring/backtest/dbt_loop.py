"""Score one backtest workspace as of many cutoffs in one process (``python -m`` this module).

A backtest runs the scoring models once per cutoff. Starting dbt for each would pay its start-up
and its parse every time, which is most of a small warehouse's run. Here the project is parsed
once and the manifest is handed to each ``dbtRunner`` invocation (dbt's documented way to skip
re-parsing). The compiled SQL does not depend on the date: each invocation's connections carry
the cutoff in libpq's PGOPTIONS (the session setting ``lead_scoring.as_of``), so every
invocation scores its own date. It runs as a child process so a dbt failure cannot take the
backtest down, and prints one line per cutoff.
"""

from __future__ import annotations

import argparse
import os
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
    from lead_scoring.runtime.dbt_tools import as_of_options

    options = os.environ.get("PGOPTIONS")
    parsed = dbtRunner().invoke(["parse", *common])
    if not parsed.success:
        print(f"error: dbt parse failed: {parsed.exception}", flush=True)
        return 1
    runner = dbtRunner(manifest=parsed.result)  # type: ignore[arg-type]  # parse -> Manifest
    for cutoff in args.cutoffs:
        began = time.monotonic()
        # read by libpq when dbt connects; dbt closes its connections after each invocation
        os.environ["PGOPTIONS"] = as_of_options(cutoff, options)
        done = runner.invoke(["run", "--select", *args.select.split(), *common])
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
