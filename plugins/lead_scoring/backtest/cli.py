"""``lead-scoring backtest``: import a dataset (or use the warehouse's own history), backtest one
or more rulesets, learn a draft, write the report."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

SHIPPED = ("uci", "olist", "synthetic")
SHIPPED_RULESETS = {"uci": "uci_bank_marketing", "olist": "olist_marketing_funnel"}


def _ruleset_arg(value: str) -> tuple[str, Path]:
    name, sep, folder = value.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"{value!r}: write NAME=FOLDER, e.g. draft=rules/draft")
    if not Path(folder).is_dir():
        raise argparse.ArgumentTypeError(f"{folder} is not a folder (a ruleset is a seed folder)")
    return name, Path(folder)


def add_parser(commands: Any, date_type: Any, positive: Any, share: Any) -> None:
    bt = commands.add_parser(
        "backtest",
        help="backtest rulesets against past conversions and write the HTML report",
        description="Score rulesets as of past cutoff dates with the real dbt project, label "
        "each lead-cutoff with what happened next, hold out the latest cutoffs, and report "
        "AUC, precision, lift, calibration, MQL volume and threshold advice beside a learned "
        "ruleset and a gradient-boosting reference. Without --dataset it backtests the "
        "warehouse's own history (the demo's embedded warehouse, or AIRFLOW_CONN_WAREHOUSE).",
    )
    bt.add_argument(
        "--dataset",
        help="uci, olist or synthetic (the shipped adapters), or a folder in the import "
        "contract (docs/backtest-import.md); imported into its own embedded database",
    )
    bt.add_argument(
        "--ruleset",
        action="append",
        type=_ruleset_arg,
        default=[],
        metavar="NAME=FOLDER",
        help="a draft ruleset (seed folder) to compare with the baseline; repeatable",
    )
    bt.add_argument(
        "--outcome",
        help="the stage that counts as converted (default: the dataset's, else salesqualifiedlead)",
    )
    bt.add_argument("--cadence", choices=("weekly", "monthly"), help="cutoff cadence")
    bt.add_argument("--maturity-days", type=positive, help="days after a cutoff to wait for it")
    bt.add_argument("--max-lead-age-days", type=positive, help="leave out older open leads")
    bt.add_argument("--start", type=date_type, help="first cutoff (YYYY-MM-DD)")
    bt.add_argument("--end", type=date_type, help="last cutoff (YYYY-MM-DD)")
    bt.add_argument("--max-cutoffs", type=positive, help="keep only the latest N cutoffs")
    bt.add_argument("--holdout-share", type=share, help="share of cutoffs held out (0.3)")
    bt.add_argument("--capacity-per-week", type=float, help="leads per week sales can work")
    bt.add_argument("--target-precision", type=share, help="wanted MQL precision (0.3)")
    bt.add_argument("--no-learn", action="store_true", help="skip the learned ruleset")
    bt.add_argument("--contacts", type=positive, default=3000, help="synthetic: contacts")
    bt.add_argument("--seed", type=int, default=7, help="synthetic: random seed")
    bt.add_argument("--out", type=Path, help="report folder (default .local/backtest/<name>)")


def _dataset_folder(name: str, args: argparse.Namespace, root: Path) -> tuple[Path, Any]:
    from lead_scoring.backtest import adapters
    from lead_scoring.synth.generator import SynthConfig

    shared = adapters.shared_data_dir()
    folder = root / "datasets" / name
    if name == "uci":
        source = shared / "uci_bank_marketing" / "bank-additional-full.csv"
        if not source.exists():
            raise SystemExit(f"error: {source} not found (set LEAD_SCORING_SHARED_DATA)")
        return folder, adapters.write_uci_bank_marketing(source, folder)
    if name == "olist":
        source = shared / "olist_marketing_funnel"
        if not source.exists():
            raise SystemExit(f"error: {source} not found (set LEAD_SCORING_SHARED_DATA)")
        return folder, adapters.write_olist(source, folder)
    config = SynthConfig(contacts=args.contacts, seed=args.seed, days=240, dirty_share=0.0)
    return folder, adapters.write_synthetic(config, folder)


def cmd_backtest(args: argparse.Namespace) -> int:
    from lead_scoring.backtest.contract import ContractError, import_dataset, read_defaults
    from lead_scoring.backtest.runner import BacktestOptions, run_backtest
    from lead_scoring.backtest.scoring import BacktestError, Ruleset
    from lead_scoring.config import dbt_project_dir, local_dir, warehouse_config
    from lead_scoring.runtime.embedded import EmbeddedPostgres

    root = local_dir() / "backtest"
    try:
        drafts = [Ruleset(n, f) for n, f in args.ruleset]  # refused before any work
    except BacktestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        defaults: dict[str, Any] = {}
        if args.dataset:
            if args.dataset in SHIPPED:
                name = args.dataset
                folder, adapted = _dataset_folder(name, args, root)
                print("\n".join(adapted.lines()))
            else:
                folder = Path(args.dataset)
                name = "".join(c if c.isalnum() else "_" for c in folder.resolve().name.lower())
            embedded = EmbeddedPostgres(local_dir() / "pgdata")
            stack.enter_context(embedded)
            warehouse = embedded.database(f"backtest_{name}"[:63])
            try:
                imported = import_dataset(warehouse, folder)
            except ContractError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print("\n".join(imported.lines()))
            defaults = imported.defaults or read_defaults(folder)
        elif os.environ.get("AIRFLOW_CONN_WAREHOUSE"):
            name, warehouse = "warehouse", warehouse_config()
        else:
            if not (local_dir() / "pgdata").exists():
                print(
                    "error: no warehouse: run `make demo` first, set AIRFLOW_CONN_WAREHOUSE, "
                    "or pass --dataset",
                    file=sys.stderr,
                )
                return 1
            name = "warehouse"
            warehouse = stack.enter_context(EmbeddedPostgres(local_dir() / "pgdata"))
        base = defaults.get("ruleset")
        rulesets = [
            Ruleset(base, dbt_project_dir() / "rulesets" / base) if base else Ruleset("production")
        ]
        rulesets += drafts
        given = {
            "outcome": args.outcome,
            "cadence": args.cadence,
            "maturity_days": args.maturity_days,
            "max_lead_age_days": args.max_lead_age_days,
            "start": args.start,
            "end": args.end,
            "max_cutoffs": args.max_cutoffs,
            "holdout_share": args.holdout_share,
            "capacity_per_week": args.capacity_per_week,
            "target_precision": args.target_precision,
        }
        try:
            options = BacktestOptions.with_defaults(
                defaults,
                rulesets=rulesets,
                learn=not args.no_learn,
                out_dir=args.out or root / name,
                title=f"Backtest: {name}",
                **given,
            )
            result = run_backtest(warehouse, options, say=print)
        except (BacktestError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print()
    for line in headline(result.summary):
        print(line)
    print(f"\nreport: file://{result.report}")
    print(f"metrics: {result.metrics_file}")
    if result.learned_ruleset:
        print(f"learned ruleset (a draft to review): {result.learned_ruleset}")
    return 0


def headline(summary: dict[str, Any]) -> list[str]:
    """The holdout's headline numbers, one line per ruleset and model."""
    lines = [
        f"{'ruleset':<28} {'model':<12} {'rows':>7} {'conv':>6} {'AUC':>6} "
        f"{'P@10%':>6} {'lift@10%':>8}"
    ]

    def fmt(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}"

    sources = [*summary["rulesets"].items(), ("random score", {"models": summary["random_floor"]})]
    for name, result in sources:
        for model, m in result["models"].items():
            lines.append(
                f"{name:<28} {model:<12} {m.get('rows', 0):>7} {m.get('positives', 0):>6} "
                f"{fmt(m.get('auc')):>6} {fmt(m.get('precision_at_10pct')):>6} "
                f"{fmt(m.get('lift_at_10pct')):>8}"
            )
    for fit in summary["fits"]:
        lines.append(
            f"{fit['scoring_model_id']}: holdout AUC current {fmt(fit['auc_current'])}, "
            f"logistic fit {fmt(fit['auc_logistic'])}, gradient boosting "
            f"{fmt(fit['auc_boosting'])}"
            + (f"; {len(fit['leakage'])} rule(s) flagged as leaking" if fit["leakage"] else "")
        )
    return lines
