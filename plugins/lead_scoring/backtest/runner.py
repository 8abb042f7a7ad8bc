"""A whole backtest in one call: score, label, measure, learn, compare, recommend, report.

1. Cutoffs from the data's time range (weekly or monthly; the latest ``max_cutoffs``), each
   early enough for its maturity window to have passed.
2. Every ruleset (production and any drafts) is scored as of each cutoff by dbt.
3. Lead-cutoffs get their labels; the latest cutoffs are the holdout (time-ordered, never a
   random split: a random split would let the model learn from the future).
4. Metrics per ruleset and model on the holdout, with a random score as the floor.
5. Learned points fitted on the earlier cutoffs, written as a draft ruleset and scored like
   the others; a gradient-boosting model on the same features is the reference.
6. Threshold advice, the leads that change band, and the report (``report.html``) with its
   data (``metrics.json``, ``band_changes.csv``, and ``labels.csv``: every lead-cutoff of the
   population with each ruleset's score and what happened).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from lead_scoring.backtest import learn, metrics, report
from lead_scoring.backtest.scoring import (
    BacktestError,
    Ruleset,
    read_outcomes,
    read_rule_units,
    read_scores,
    score_cutoffs,
)
from lead_scoring.config import WarehouseConfig, local_dir

log = logging.getLogger(__name__)

CADENCE_DAYS = {"weekly": 7.0, "monthly": 30.4}


@dataclass
class BacktestOptions:
    rulesets: list[Ruleset]
    outcome: str = "salesqualifiedlead"
    cadence: str = "weekly"
    maturity_days: int = 30
    max_lead_age_days: int | None = None
    start: date | None = None
    end: date | None = None
    max_cutoffs: int | None = 12
    holdout_share: float = 0.3
    capacity_per_week: float | None = None
    target_precision: float | None = 0.3
    learn: bool = True
    # score the learned draft with dbt like the others (False: fit and write it only)
    score_learned: bool = True
    leakage_auc: float = 0.9
    out_dir: Path = field(default_factory=lambda: local_dir() / "backtest" / "report")
    title: str = "Backtest"

    def window(self) -> metrics.Window:
        return metrics.Window(self.outcome, self.maturity_days, self.max_lead_age_days)

    @classmethod
    def with_defaults(cls, defaults: dict[str, Any], **given: Any) -> BacktestOptions:
        """Options from a dataset's ``backtest.json``, overridden by what was given."""
        keys = (
            "outcome",
            "cadence",
            "maturity_days",
            "max_lead_age_days",
            "max_cutoffs",
            "holdout_share",
            "capacity_per_week",
            "target_precision",
        )
        merged = {k: defaults[k] for k in keys if k in defaults}
        for key in ("start", "end"):
            if defaults.get(key):
                merged[key] = date.fromisoformat(defaults[key])
        merged.update({k: v for k, v in given.items() if v is not None})
        return cls(**merged)


@dataclass
class BacktestResult:
    report: Path
    metrics_file: Path
    summary: dict[str, Any]
    learned_ruleset: Path | None = None


def _cutoffs(outcomes: pd.DataFrame, options: BacktestOptions) -> list[date]:
    moments = outcomes.filter(like="_at").stack()
    if moments.empty:
        raise BacktestError("the warehouse holds no contacts to backtest on")
    first_seen = pd.Timestamp(outcomes["created_at"].min()).date()
    last_seen = pd.Timestamp(moments.max()).date()
    today = datetime.now(UTC).date()
    latest = min(last_seen, today) - timedelta(days=options.maturity_days)
    first = options.start or first_seen
    last = min(options.end or latest, latest)
    every = metrics.cutoff_dates(first, last, options.cadence)
    # a cutoff nobody is open at (no lead yet, or all decided) would only cost a dbt run
    cutoffs = [c for c in every if metrics.open_leads(outcomes, c, options.window()) > 0]
    if options.max_cutoffs:
        cutoffs = cutoffs[-options.max_cutoffs :]
    if len(cutoffs) < 2:
        raise BacktestError(
            f"only {len(cutoffs)} cutoff(s) fit between {first} and {last} (the data ends "
            f"{last_seen}, less the {options.maturity_days}-day maturity window): a backtest "
            "needs two, one to learn from and one to test on"
        )
    return cutoffs


def _hot_thresholds(ruleset: Ruleset) -> dict[str, float]:
    table = pd.read_csv(ruleset.seed_files()["score_thresholds.csv"], dtype=str)
    defaults = table[table["segment"] == "*"]
    return {r.scoring_model_id: float(r.hot_threshold) for r in defaults.itertuples()}


def _evaluate(
    name: str,
    scores: pd.DataFrame,
    outcomes: pd.DataFrame,
    options: BacktestOptions,
    test: list[date],
    cadence_days: float,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    frame = metrics.population(scores, outcomes, options.window())
    held = frame[frame["cutoff"].isin(test)]
    per_model: dict[str, Any] = {}
    for model, part in held.groupby("scoring_model_id"):
        entry = metrics.score_metrics(part)
        entry["mql_conversion"] = metrics.mql_conversion(part)
        per_model[str(model)] = entry
    summary = {
        "ruleset": name,
        "population_rows": len(frame),
        "left_out_attributes_recorded_later": frame.attrs.get("left_out_attributes_later", 0),
        "models": per_model,
        "mql_volume": metrics.mql_volume(scores, cadence_days),
        "thresholds": metrics.recommend_thresholds(
            held,
            scores,
            capacity_per_week=options.capacity_per_week,
            target_precision=options.target_precision,
            cadence_days=cadence_days,
        ),
    }
    return frame, summary


def _random_floor(frame: pd.DataFrame, test: list[date]) -> dict[str, Any]:
    held = frame[frame["cutoff"].isin(test)].copy()
    held["random_score"] = np.random.default_rng(0).random(len(held))
    return {
        str(m): metrics.score_metrics(p.drop(columns=["band"]), "random_score")
        for m, p in held.groupby("scoring_model_id")
    }


def run_backtest(
    warehouse: WarehouseConfig, options: BacktestOptions, *, say: Any = None
) -> BacktestResult:
    """Run the backtest described by ``options`` against ``warehouse``'s raw tables."""
    say = say or log.info
    started = time.monotonic()
    if not options.rulesets:
        raise BacktestError("name at least one ruleset to backtest")
    names = [r.name for r in options.rulesets]
    if len(set(names)) != len(names):
        raise BacktestError(f"ruleset names must differ: {', '.join(names)}")
    outcomes = read_outcomes(warehouse)
    cutoffs = _cutoffs(outcomes, options)
    train, test = metrics.split_holdout(cutoffs, options.holdout_share)
    cadence_days = CADENCE_DAYS[options.cadence]
    say(
        f"backtest: {len(outcomes)} leads, {len(cutoffs)} cutoffs {cutoffs[0]}..{cutoffs[-1]} "
        f"({options.cadence}); learn on {len(train)}, hold out {len(test)}; outcome "
        f"{options.outcome} within {options.maturity_days} days"
    )
    options.out_dir.mkdir(parents=True, exist_ok=True)
    evaluated: dict[str, dict[str, Any]] = {}
    frames: dict[str, pd.DataFrame] = {}
    scores: dict[str, pd.DataFrame] = {}
    timings: dict[str, Any] = {}
    for ruleset in options.rulesets:
        timings[ruleset.name] = score_cutoffs(warehouse, ruleset, cutoffs, progress=say)
        scores[ruleset.name] = read_scores(warehouse, ruleset, cutoffs)
        frames[ruleset.name], evaluated[ruleset.name] = _evaluate(
            ruleset.name, scores[ruleset.name], outcomes, options, test, cadence_days
        )
    baseline = options.rulesets[0]
    fits: list[learn.Fit] = []
    learned_folder: Path | None = None
    if options.learn:
        units = read_rule_units(warehouse, baseline)
        hot = _hot_thresholds(baseline)
        frame = frames[baseline.name]
        for model in sorted(frame["scoring_model_id"].unique()):
            fits.append(
                learn.fit_model(
                    units,
                    frame,
                    baseline,
                    str(model),
                    train,
                    hot.get(str(model), 70.0),
                    leakage_auc=options.leakage_auc,
                )
            )
        learned_folder = learn.write_learned_ruleset(
            baseline, fits, options.out_dir / "learned_ruleset"
        )
        say(f"backtest: learned points written to {learned_folder}")
    if options.learn and options.score_learned and learned_folder is not None:
        learned = Ruleset(f"{baseline.name}_learned"[:31], learned_folder)
        timings[learned.name] = score_cutoffs(warehouse, learned, cutoffs, progress=say)
        scores[learned.name] = read_scores(warehouse, learned, cutoffs)
        frames[learned.name], evaluated[learned.name] = _evaluate(
            learned.name, scores[learned.name], outcomes, options, test, cadence_days
        )
    columns = ["cutoff", "lead_id", "scoring_model_id", "segment", "total_score", "band", "label"]
    pd.concat([f[columns].assign(ruleset=n) for n, f in frames.items()]).to_csv(
        options.out_dir / "labels.csv", index=False
    )
    compared = list(scores)
    changes = pd.DataFrame()
    if len(compared) >= 2:
        changes = metrics.band_changes(scores[compared[0]], scores[compared[1]], cutoffs[-1])
        changes.to_csv(options.out_dir / "band_changes.csv", index=False)
    summary: dict[str, Any] = {
        "title": options.title,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {
            **{k: v for k, v in asdict(options).items() if k not in ("rulesets", "out_dir")},
            "rulesets": {r.name: str(r.folder or "production seeds") for r in options.rulesets},
        },
        "cutoffs": [str(c) for c in cutoffs],
        "train_cutoffs": [str(c) for c in train],
        "holdout_cutoffs": [str(c) for c in test],
        "leads": len(outcomes),
        "rulesets": evaluated,
        "random_floor": _random_floor(frames[baseline.name], test),
        "fits": [
            {
                "scoring_model_id": f.scoring_model_id,
                "auc_current": f.auc_current,
                "auc_logistic": f.auc_logistic,
                "auc_boosting": f.auc_boosting,
                "train_rows": f.train_rows,
                "test_rows": f.test_rows,
                "leakage": f.leakage,
                "rules": f.rules.replace({np.nan: None}).to_dict(orient="records"),
            }
            for f in fits
        ],
        "band_changes": {
            "compared": compared[:2],
            "as_of_date": str(cutoffs[-1]),
            "leads": len(changes),
            "matrix": (
                changes.groupby(["band_a", "band_b"])
                .size()
                .rename("leads")
                .reset_index()
                .to_dict(orient="records")
                if len(changes)
                else []
            ),
        },
        "timings": timings,
    }
    summary["seconds"] = time.monotonic() - started
    metrics_file = options.out_dir / "metrics.json"
    metrics_file.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    page = report.write_report(summary, frames, scores, options.out_dir)
    say(f"backtest: report {page} ({summary['seconds']:.0f}s)")
    return BacktestResult(page, metrics_file, summary, learned_folder)


def record_run(warehouse: WarehouseConfig, run_id: str, result: BacktestResult) -> None:
    """One row per backtest in ``lead_scoring_ops.backtest_runs``: where the report is, and the
    headline metrics (JSON) for BI or a comparison over time."""
    from psycopg.types.json import Jsonb

    from lead_scoring.warehouse import OPS, connect

    summary = result.summary
    headline = {
        name: {
            m: {k: v.get(k) for k in ("rows", "positives", "auc", "lift_at_10pct")}
            for m, v in r["models"].items()
        }
        for name, r in summary["rulesets"].items()
    }
    with connect(warehouse) as conn, conn.transaction():
        conn.execute(
            f"create table if not exists {OPS}.backtest_runs ("
            "run_id text primary key, generated_at timestamptz not null, "
            "cutoffs text[] not null, holdout_cutoffs text[] not null, outcome text not null, "
            "report_path text not null, headline jsonb not null, fits jsonb not null)"
        )
        conn.execute(
            f"insert into {OPS}.backtest_runs values (%s, %s, %s, %s, %s, %s, %s, %s) "
            "on conflict (run_id) do update set generated_at = excluded.generated_at, "
            "cutoffs = excluded.cutoffs, holdout_cutoffs = excluded.holdout_cutoffs, "
            "outcome = excluded.outcome, report_path = excluded.report_path, "
            "headline = excluded.headline, fits = excluded.fits",
            (
                run_id,
                summary["generated_at"],
                summary["cutoffs"],
                summary["holdout_cutoffs"],
                summary["options"]["outcome"],
                str(result.report),
                Jsonb(headline),
                Jsonb([{k: v for k, v in f.items() if k != "rules"} for f in summary["fits"]]),
            ),
        )
