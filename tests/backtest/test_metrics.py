"""Labels, holdout, metrics, threshold advice and the learned points' fit, on small frames whose
answers are known by hand."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from lead_scoring.backtest import learn, metrics
from lead_scoring.backtest.scoring import BacktestError, Ruleset


def _utc(text: str | None) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC") if text else pd.NaT


def _outcomes(rows: list[dict[str, str | None]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in (
        "created_at",
        "attributes_known_at",
        "other_at",
        *[f"{s}_at" for s in metrics.FUNNEL],
    ):
        frame[column] = [_utc(v) for v in frame.get(column, [None] * len(frame))]
    return frame


def test_cutoffs_are_weekly_back_from_the_end_or_on_the_first_of_each_month() -> None:
    assert metrics.cutoff_dates(date(2026, 1, 1), date(2026, 1, 29), "weekly") == [
        date(2026, 1, 1),
        date(2026, 1, 8),
        date(2026, 1, 15),
        date(2026, 1, 22),
        date(2026, 1, 29),
    ]
    assert metrics.cutoff_dates(date(2026, 1, 15), date(2026, 4, 1), "monthly") == [
        date(2026, 2, 1),
        date(2026, 3, 1),
        date(2026, 4, 1),
    ]
    assert metrics.cutoff_dates(date(2026, 1, 1), date(2026, 4, 1), "monthly", 2) == [
        date(2026, 3, 1),
        date(2026, 4, 1),
    ]
    with pytest.raises(ValueError, match="weekly or monthly"):
        metrics.cutoff_dates(date(2026, 1, 1), date(2026, 2, 1), "daily")


def test_the_holdout_is_the_latest_cutoffs_never_a_random_pick() -> None:
    days = [date(2026, 1, d) for d in (22, 1, 15, 8, 29)]
    train, test = metrics.split_holdout(days, 0.4)
    assert train == [date(2026, 1, 1), date(2026, 1, 8), date(2026, 1, 15)]
    assert test == [date(2026, 1, 22), date(2026, 1, 29)]
    assert max(train) < min(test)
    with pytest.raises(ValueError, match="at least two cutoffs"):
        metrics.split_holdout([date(2026, 1, 1)], 0.3)


def test_population_labels_what_happened_within_the_window_and_leaves_out_the_unknowable() -> None:
    outcomes = _outcomes(
        [
            # converts 10 days after the cutoff: positive
            {
                "lead_id": "a",
                "created_at": "2026-01-01",
                "attributes_known_at": "2026-01-01",
                "salesqualifiedlead_at": "2026-02-11",
            },
            # converts 40 days after: negative within a 30-day window
            {
                "lead_id": "b",
                "created_at": "2026-01-01",
                "attributes_known_at": "2026-01-01",
                "customer_at": "2026-03-13",
            },
            # already converted before the cutoff: not in the population
            {
                "lead_id": "c",
                "created_at": "2026-01-01",
                "attributes_known_at": "2026-01-01",
                "salesqualifiedlead_at": "2026-01-20",
            },
            # lost before the cutoff: not in the population
            {
                "lead_id": "d",
                "created_at": "2026-01-01",
                "attributes_known_at": "2026-01-01",
                "other_at": "2026-01-25",
            },
            # attributes recorded after the cutoff (and after converting): left out, counted
            {
                "lead_id": "e",
                "created_at": "2026-01-01",
                "attributes_known_at": "2026-02-20",
                "salesqualifiedlead_at": "2026-02-10",
            },
            # created after the cutoff: no score anyway, nor population
            {"lead_id": "f", "created_at": "2026-02-05", "attributes_known_at": "2026-02-05"},
        ]
    )
    scores = pd.DataFrame(
        {
            "as_of_date": [date(2026, 2, 1)] * 5,
            "lead_id": list("abcde"),
            "scoring_model_id": "m",
            "total_score": [50, 40, 30, 20, 99],
        }
    )
    frame = metrics.population(scores, outcomes, metrics.Window("salesqualifiedlead", 30))
    assert dict(zip(frame["lead_id"], frame["label"], strict=True)) == {"a": 1, "b": 0}
    assert frame.attrs["left_out_attributes_later"] == 1
    assert (
        metrics.open_leads(outcomes, date(2026, 2, 1), metrics.Window("salesqualifiedlead", 30))
        == 3
    )


def _frame(scores: list[float], labels: list[int], cutoff: date = date(2026, 1, 1)) -> pd.DataFrame:
    n = len(scores)
    return pd.DataFrame(
        {
            "lead_id": [f"l{i}" for i in range(n)],
            "cutoff": cutoff,
            "as_of_date": cutoff,
            "scoring_model_id": "m",
            "segment": "other",
            "total_score": scores,
            "label": labels,
            "band": ["hot" if s >= 70 else "warm" if s >= 40 else "cold" for s in scores],
            "is_mql": [s >= 60 for s in scores],
        }
    )


def test_a_score_that_ranks_every_converter_first_gets_auc_one_and_the_top_decile_lift() -> None:
    scores = list(range(100))
    labels = [1 if s >= 90 else 0 for s in scores]
    result = metrics.score_metrics(_frame([float(s) for s in scores], labels))
    assert result["auc"] == 1.0
    assert result["precision_at_10pct"] == 1.0
    assert result["lift_at_10pct"] == pytest.approx(10.0)
    assert [d["rate"] for d in result["lift_by_decile"]][:2] == [1.0, 0.0]
    assert {b["band"]: b["rate"] for b in result["by_band"]} == {
        "cold": 0.0,
        "warm": 0.0,
        "hot": pytest.approx(10 / 30),
    }
    assert result["bands_ordered"] is True
    assert result["calibration"][-1]["rate"] == 1.0


def test_threshold_advice_follows_capacity_and_precision() -> None:
    # 100 leads; the top 20 convert. Over two weekly cutoffs each lead's score rises by 10
    # points, so a threshold T is newly reached by the leads from T-10 to T-1: 10 a week.
    scores = [float(s) for s in range(100)]
    labels = [1 if s >= 80 else 0 for s in range(100)]
    frame = _frame(scores, labels)
    week1 = frame.assign(as_of_date=date(2026, 1, 1), total_score=frame["total_score"] - 10)
    week2 = frame.assign(as_of_date=date(2026, 1, 8))
    volume = pd.concat([week1, week2])
    advice = metrics.recommend_thresholds(
        frame, volume, capacity_per_week=5, target_precision=0.9, cadence_days=7
    )
    overall = next(a for a in advice if a["segment"] == "*")
    # only thresholds above the scores reached (95+: 5 leads cross) fit a 5-a-week capacity
    assert overall["by_capacity"] == {"threshold": 95, "mqls_per_week": 5.0}
    assert overall["by_precision"]["threshold"] == 78  # 20 of 22 = 0.909
    assert overall["by_precision"]["precision"] == pytest.approx(20 / 22)
    assert overall["by_precision"]["mqls_per_week"] == 10.0


def test_signed_logistic_keeps_each_rule_on_its_side() -> None:
    rng = np.random.default_rng(1)
    good = rng.integers(0, 2, 2000)
    twin = good.copy()  # perfectly correlated: an unconstrained fit may split them +/-
    bad = rng.integers(0, 2, 2000)
    y = (rng.random(2000) < 0.1 + 0.5 * good - 0.08 * bad).astype(int)
    x = np.column_stack([good, twin, bad]).astype(float)
    weights, _ = learn.signed_logistic(x, y, np.array([1.0, 1.0, -1.0]))
    assert weights[0] >= 0
    assert weights[1] >= 0
    assert weights[2] <= 0
    assert weights[0] + weights[1] > 1.0


def test_a_rule_that_gives_the_answer_away_is_flagged_and_gets_no_points(tmp_path) -> None:
    rng = np.random.default_rng(2)
    n = 600
    label = (rng.random(n) < 0.2).astype(int)
    cutoffs = [date(2026, 1, 1) if i < 400 else date(2026, 2, 1) for i in range(n)]
    frame = pd.DataFrame(
        {
            "as_of_date": cutoffs,
            "cutoff": cutoffs,
            "lead_id": [f"l{i}" for i in range(n)],
            "scoring_model_id": "default",
            "total_score": rng.random(n) * 100,
            "label": label,
        }
    )
    honest = rng.integers(0, 2, n)
    units = pd.concat(
        [
            # a field only the converted leads have (filled in when the deal closed)
            pd.DataFrame(
                {
                    "as_of_date": cutoffs,
                    "lead_id": frame["lead_id"],
                    "scoring_model_id": "default",
                    "rule_id": "dem_title_executive",
                    "units": label.astype(float),
                }
            ),
            pd.DataFrame(
                {
                    "as_of_date": cutoffs,
                    "lead_id": frame["lead_id"],
                    "scoring_model_id": "default",
                    "rule_id": "dem_title_manager",
                    "units": honest.astype(float),
                }
            ),
        ]
    )
    units = units[units["units"] > 0]
    fit = learn.fit_model(units, frame, Ruleset("production"), "default", [date(2026, 1, 1)], 70.0)
    assert [leak["rule_id"] for leak in fit.leakage] == ["dem_title_executive"]
    rules = fit.rules.set_index("rule_id")
    assert rules.loc["dem_title_executive", "learned_points"] == 0
    assert bool(rules.loc["dem_title_executive", "leakage"]) is True
    assert not bool(rules.loc["dem_title_manager", "leakage"])


def test_a_draft_ruleset_overlays_the_production_seeds_and_names_what_it_cannot_use(
    tmp_path,
) -> None:
    draft = tmp_path / "draft"
    draft.mkdir()
    (draft / "demographic_rules.csv").write_text(
        "scoring_model_id,rule_id,component,attribute,operator,rule_value,points,description\n"
        "default,dem_title_executive,demographic,job_title,regex,vp,45,Executives\n"
    )
    files = Ruleset("draft", draft).seed_files()
    assert files["demographic_rules.csv"] == draft / "demographic_rules.csv"
    assert files["behavioral_rules.csv"].parent.name == "seeds"  # kept from production
    points = Ruleset("draft", draft).rule_points().set_index("rule_id")
    assert points.loc["dem_title_executive", "points"] == 45
    (draft / "rules.csv").write_text("a\n1\n")
    with pytest.raises(BacktestError, match=r"rules\.csv is not a seed"):
        Ruleset("draft", draft).seed_files()
    with pytest.raises(BacktestError, match="lowercase letters"):
        Ruleset("Draft-1", draft)
    with pytest.raises(BacktestError, match="is not a folder"):
        Ruleset("missing", tmp_path / "nope")
