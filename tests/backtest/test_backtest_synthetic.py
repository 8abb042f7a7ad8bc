"""A backtest end to end on synthetic data whose hidden propensity is known: real dbt scores the
production ruleset and the learned one as of past cutoffs in the real embedded PostgreSQL.

What must hold: the production ruleset ranks converters far better than a random score, the
learned ruleset (scored by dbt like any other) beats the production one on the held-out later
cutoffs, the hidden propensity itself bounds both from above, the holdout is the latest cutoffs,
and the report renders its charts (a headless Chromium screenshot is kept as a test artifact).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from lead_scoring import tasks
from lead_scoring.backtest import adapters, runner
from lead_scoring.backtest.contract import import_dataset
from lead_scoring.config import WarehouseConfig
from lead_scoring.synth.generator import SynthConfig
from lead_scoring.warehouse import connect
from tests.conftest import fresh_database

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / ".local" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@dataclass
class Run:
    result: runner.BacktestResult
    truth: dict[str, float]
    recorded: list[tuple[str, str, dict[str, object]]]


@pytest.fixture(scope="module")
def run(pg_server: WarehouseConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("backtest")
    config = SynthConfig(contacts=1500, seed=7, end=date(2026, 11, 1), days=240, dirty_share=0)
    adapters.write_synthetic(config, root / "synthetic")
    with fresh_database(pg_server) as warehouse, pytest.MonkeyPatch.context() as env:
        import_dataset(warehouse, root / "synthetic")
        # through the weekly DAG's task, as Airflow runs it: the warehouse connection from
        # the environment, the report under LEAD_SCORING_BACKTEST_DIR, a row in the ops table
        env.setenv("AIRFLOW_CONN_WAREHOUSE", warehouse.to_airflow_json())
        env.setenv("LEAD_SCORING_BACKTEST_DIR", str(root / "reports"))
        paths = tasks.backtest(
            run_id="scheduled__2026-11-01",
            logical_date=date(2026, 11, 1),
            outcome="marketingqualifiedlead",
            cadence="weekly",
            maturity_days=30,
            max_cutoffs=6,
            capacity_per_week=40,
            target_precision=0.3,
        )
        report = Path(paths["report"])
        assert report.parent == root / "reports" / "2026-11-01"
        metrics_file = Path(paths["metrics"])
        summary = json.loads(metrics_file.read_text())
        result = runner.BacktestResult(
            report, metrics_file, summary, report.parent / "learned_ruleset"
        )
        with connect(warehouse) as conn:
            recorded = conn.execute(
                "select run_id, report_path, headline from lead_scoring_ops.backtest_runs"
            ).fetchall()
        with (root / "synthetic" / "truth.csv").open() as handle:
            truth = {row["lead_id"]: float(row["propensity"]) for row in csv.DictReader(handle)}
        yield Run(result, truth, recorded)


def _auc(run: Run, name: str) -> float:
    value = run.result.summary["rulesets"][name]["models"]["default"]["auc"]
    assert value is not None
    return float(value)


def test_the_production_ruleset_beats_a_random_score(run: Run) -> None:
    production = _auc(run, "production")
    random_score = run.result.summary["random_floor"]["default"]["auc"]
    assert production > 0.65
    assert production > random_score + 0.1
    top = run.result.summary["rulesets"]["production"]["models"]["default"]
    assert top["lift_at_10pct"] > 2.0
    assert top["positives"] >= 30  # enough converters in the holdout to mean something


def test_the_learned_ruleset_beats_the_production_one_and_the_truth_bounds_both(run: Run) -> None:
    learned, production = _auc(run, "production_learned"), _auc(run, "production")
    assert learned > production + 0.01
    fit = next(f for f in run.result.summary["fits"] if f["scoring_model_id"] == "default")
    assert fit["auc_boosting"] is not None
    assert fit["auc_logistic"] is not None
    # no learned rule changes sides (a demo request never costs points), and points moved
    rules = fit["rules"]
    assert all(r["learned_points"] * r["points"] >= 0 for r in rules)
    assert any(r["learned_points"] != r["points"] for r in rules)
    # the hidden propensity ranks the same holdout better than any ruleset can
    holdout = run.result.summary["holdout_cutoffs"]
    scores = pd.read_csv(run.result.report.parent / "labels.csv")
    scores = scores[
        (scores["ruleset"] == "production")
        & (scores["scoring_model_id"] == "default")
        & scores["cutoff"].isin(holdout)
    ]
    oracle = roc_auc_score(scores["label"], scores["lead_id"].map(run.truth))
    assert oracle > learned


def test_the_weekly_task_records_where_the_report_is(run: Run) -> None:
    assert len(run.recorded) == 1
    run_id, report_path, headline = run.recorded[0]
    assert run_id == "scheduled__2026-11-01"
    assert report_path == str(run.result.report)
    assert headline["production"]["default"]["auc"] == _auc(run, "production")


def test_the_holdout_is_the_latest_cutoffs(run: Run) -> None:
    summary = run.result.summary
    assert len(summary["cutoffs"]) == 6
    assert max(summary["train_cutoffs"]) < min(summary["holdout_cutoffs"])
    assert sorted(summary["train_cutoffs"] + summary["holdout_cutoffs"]) == summary["cutoffs"]


def test_the_report_and_its_data_are_written(run: Run) -> None:
    out = run.result.report.parent
    page = run.result.report.read_text()
    assert page.count("<img") >= 6  # lift, calibration, 2 distributions, MQL volume, rules
    for heading in (
        "Headline (holdout)",
        "The cost of staying explainable",
        "conversion by band",
        "MQL threshold advice",
        "Leads that change band",
    ):
        assert heading in page, heading
    metrics = json.loads(run.result.metrics_file.read_text())
    production = metrics["rulesets"]["production"]
    assert len(production["models"]["default"]["lift_by_decile"]) == 10
    assert production["mql_volume"]
    advice = next(t for t in production["thresholds"] if t["segment"] == "*")
    assert advice["by_capacity"]["mqls_per_week"] <= 40
    changes = pd.read_csv(out / "band_changes.csv")
    assert len(changes) == metrics["band_changes"]["leads"] > 0
    assert (changes["band_a"] != changes["band_b"]).all()
    learned = run.result.learned_ruleset
    assert learned is not None
    assert (learned / "demographic_rules.csv").exists()


@pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("LEAD_SCORING_REQUIRE_BROWSER"),
    reason="Debian's chromium is not installed (CI installs it and sets "
    "LEAD_SCORING_REQUIRE_BROWSER)",
)
def test_the_report_renders_its_charts_in_a_browser(run: Run) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "backtest-report.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(run.result.report.as_uri())
            images = page.locator("img")
            assert images.count() >= 6
            # every chart decoded and laid out (a broken image has no natural width)
            widths = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
            assert all(w > 300 for w in widths), widths
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 50_000
    print(f"screenshot: {shot}")
