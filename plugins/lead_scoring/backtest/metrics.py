"""How well scores predicted what happened next: labels, metrics and threshold advice.

A *lead-cutoff* is a lead scored as of a cutoff date. It is in the backtest's population when
the lead existed by the cutoff, had not converted or been lost yet, and its attributes had been
recorded by then (a lead whose attributes were recorded later is left out and counted: with
them it would be scored with what nobody knew at the cutoff). Its label is whether it reached
the outcome stage (or a later one) within the maturity window after the cutoff.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

FUNNEL = ("marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer")
BANDS = ("cold", "warm", "hot")


@dataclass(frozen=True)
class Window:
    outcome: str = "salesqualifiedlead"
    maturity_days: int = 30
    max_lead_age_days: int | None = None

    def __post_init__(self) -> None:
        if self.outcome not in FUNNEL:
            raise ValueError(f"outcome {self.outcome!r} is not one of {', '.join(FUNNEL)}")
        if self.maturity_days < 1:
            raise ValueError("maturity_days must be at least 1")


def cutoff_dates(
    first: date, last: date, cadence: str, max_cutoffs: int | None = None
) -> list[date]:
    """Cutoffs from ``first`` to ``last``: every 7 days back from ``last`` (weekly) or the 1st
    of each month (monthly); the latest ``max_cutoffs`` of them."""
    if last < first:
        return []
    days: list[date] = []
    if cadence == "weekly":
        day = last
        while day >= first:
            days.append(day)
            day -= timedelta(days=7)
        days.reverse()
    elif cadence == "monthly":
        day = first.replace(day=1)
        if day < first:
            day = (day + timedelta(days=32)).replace(day=1)
        while day <= last:
            days.append(day)
            day = (day + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"cadence {cadence!r}: weekly or monthly")
    return days[-max_cutoffs:] if max_cutoffs else days


def conversion_times(outcomes: pd.DataFrame, outcome: str) -> pd.Series:
    """When each lead first reached ``outcome`` or a later stage (NaT: never)."""
    later = [f"{s}_at" for s in FUNNEL[FUNNEL.index(outcome) :]]
    return outcomes[later].min(axis=1)


def open_leads(outcomes: pd.DataFrame, cutoff: date, window: Window) -> int:
    """How many leads would be in the population at ``cutoff`` (before any scoring)."""
    end = pd.Timestamp(cutoff, tz="UTC") + pd.Timedelta(days=1)
    created = outcomes["created_at"].fillna(outcomes["attributes_known_at"])
    converted = conversion_times(outcomes, window.outcome)
    mask = (created < end) & (converted.isna() | (converted >= end))
    mask &= outcomes["other_at"].isna() | (outcomes["other_at"] >= end)
    if window.max_lead_age_days is not None:
        mask &= created >= end - pd.Timedelta(days=window.max_lead_age_days)
    return int(mask.sum())


def population(scores: pd.DataFrame, outcomes: pd.DataFrame, window: Window) -> pd.DataFrame:
    """The scores of the population, with ``label`` and ``cutoff`` columns, and a ``left_out``
    attribute frame-level count in ``attrs``."""
    people = outcomes[["lead_id", "created_at", "attributes_known_at", "other_at"]].copy()
    people["converted_at"] = conversion_times(outcomes, window.outcome)
    frame = scores.merge(people, on="lead_id", how="inner")
    cutoff_end = pd.to_datetime(frame["as_of_date"]).dt.tz_localize("UTC") + pd.Timedelta(days=1)
    created = frame["created_at"].fillna(frame["attributes_known_at"])
    still_open = (frame["converted_at"].isna() | (frame["converted_at"] >= cutoff_end)) & (
        frame["other_at"].isna() | (frame["other_at"] >= cutoff_end)
    )
    exists = created < cutoff_end
    if window.max_lead_age_days is not None:
        exists &= created >= cutoff_end - pd.Timedelta(days=window.max_lead_age_days)
    known = frame["attributes_known_at"] < cutoff_end
    eligible = exists & still_open
    left_out = int((eligible & ~known).sum())
    kept = frame[eligible & known].copy()
    kept_end = cutoff_end[eligible & known]
    horizon = kept_end + pd.Timedelta(days=window.maturity_days)
    kept["label"] = (kept["converted_at"] < horizon).astype(int)
    kept["cutoff"] = pd.to_datetime(kept["as_of_date"]).dt.date
    kept.attrs["left_out_attributes_later"] = left_out
    return kept.drop(columns=["created_at", "attributes_known_at", "other_at"])


def split_holdout(cutoffs: Sequence[date], holdout_share: float) -> tuple[list[date], list[date]]:
    """Time-ordered: the latest ``holdout_share`` of the cutoffs (at least one) are held out."""
    ordered = sorted(cutoffs)
    n_test = max(1, round(len(ordered) * holdout_share))
    if len(ordered) < 2:
        raise ValueError("a backtest needs at least two cutoffs (one to learn, one to test)")
    n_test = min(n_test, len(ordered) - 1)
    return ordered[:-n_test], ordered[-n_test:]


def _auc(labels: pd.Series, scores: pd.Series) -> float | None:
    if labels.nunique() < 2:
        return None
    return float(roc_auc_score(labels, scores))


def score_metrics(frame: pd.DataFrame, score: str = "total_score") -> dict[str, Any]:
    """AUC, precision and lift in the top 10% and by decile, conversion by band, calibration."""
    if frame.empty:
        return {"rows": 0}
    base = float(frame["label"].mean())
    # deciles within each cutoff (1 = the top tenth), ties broken by order
    pct = frame.groupby("cutoff")[score].rank(method="first", ascending=False, pct=True)
    decile = np.ceil(pct * 10).clip(1, 10).astype(int)
    by_decile = frame.assign(decile=decile).groupby("decile")["label"].agg(["count", "mean"])
    top = frame[decile == 1]
    result: dict[str, Any] = {
        "rows": len(frame),
        "leads": int(frame["lead_id"].nunique()),
        "positives": int(frame["label"].sum()),
        "base_rate": base,
        "auc": _auc(frame["label"], frame[score]),
        "precision_at_10pct": float(top["label"].mean()) if len(top) else None,
        "lift_at_10pct": float(top["label"].mean() / base) if len(top) and base else None,
        "lift_by_decile": [
            {
                "decile": int(d),
                "rows": int(r["count"]),
                "rate": float(r["mean"]),
                "lift": float(r["mean"] / base) if base else None,
            }
            for d, r in by_decile.iterrows()
        ],
    }
    if "band" in frame:
        bands = frame.groupby("band")["label"].agg(["count", "mean"])
        result["by_band"] = [
            {"band": b, "rows": int(bands.loc[b, "count"]), "rate": float(bands.loc[b, "mean"])}
            for b in BANDS
            if b in bands.index
        ]
        rates = [row["rate"] for row in result["by_band"]]
        result["bands_ordered"] = all(a <= b for a, b in pairwise(rates))
    bins = pd.qcut(frame[score].rank(method="first"), q=min(10, len(frame)), labels=False)
    calib = (
        frame.assign(bin=bins)
        .groupby("bin")
        .agg(score=(score, "mean"), rate=("label", "mean"), rows=("label", "size"))
    )
    result["calibration"] = [
        {"score": float(r["score"]), "rate": float(r["rate"]), "rows": int(r["rows"])}
        for _, r in calib.iterrows()
    ]
    return result


def mql_volume(scores: pd.DataFrame, cadence_days: float) -> list[dict[str, Any]]:
    """New MQLs per cutoff (leads whose MQL date is that as-of date), per week. The first
    cutoff is left out: every lead above the threshold "becomes" an MQL on it."""
    first = scores["as_of_date"].min()
    new = scores[
        scores["mql_date"].notna()
        & (scores["mql_date"] == scores["as_of_date"])
        & (scores["as_of_date"] > first)
    ]
    per = new.groupby(["as_of_date", "scoring_model_id"]).size()
    return [
        {
            "as_of_date": str(d),
            "scoring_model_id": m,
            "new_mqls": int(n),
            "per_week": float(n * 7 / cadence_days),
        }
        for (d, m), n in per.items()
    ]


def mql_conversion(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Of the lead-cutoffs flagged MQL, the share that reached the outcome, by band x segment."""
    mqls = frame[frame["is_mql"]]
    grouped = mqls.groupby(["band", "segment"])["label"].agg(["count", "mean"])
    return [
        {"band": b, "segment": s, "mqls": int(r["count"]), "rate": float(r["mean"])}
        for (b, s), r in grouped.iterrows()
    ]


def new_mqls_per_week(
    scores: pd.DataFrame, thresholds: np.ndarray, cadence_days: float
) -> np.ndarray:
    """For each threshold, the leads per week that would newly reach it: from one cutoff to
    the next, leads at or above it that were below it (or not yet leads) before."""
    wide = scores.pivot_table(
        index="lead_id", columns="as_of_date", values="total_score", aggfunc="max"
    ).sort_index(axis=1)
    values = wide.to_numpy()
    if values.shape[1] < 2:
        return np.full(len(thresholds), np.nan)
    weeks = (values.shape[1] - 1) * cadence_days / 7
    with np.errstate(invalid="ignore"):
        return np.array(
            [((values[:, 1:] >= t) & ~(values[:, :-1] >= t)).sum() / weeks for t in thresholds]
        )


def recommend_thresholds(
    frame: pd.DataFrame,
    scores: pd.DataFrame,
    *,
    capacity_per_week: float | None,
    target_precision: float | None,
    cadence_days: float,
    min_rows: int = 20,
) -> list[dict[str, Any]]:
    """Per model and segment (and ``*`` for all segments): the lowest MQL threshold whose new
    MQLs per week (over every cutoff's ``scores``) stay within the sales team's capacity, and
    the lowest one whose lead-cutoffs at or above it in ``frame`` (the holdout) reached the
    outcome at the target precision."""
    rows: list[dict[str, Any]] = []
    groups: list[tuple[str, str, pd.DataFrame, pd.DataFrame]] = []
    for model, part in frame.groupby("scoring_model_id"):
        mine = scores[scores["scoring_model_id"] == model]
        groups.append((str(model), "*", part, mine))
        for segment, seg in part.groupby("segment"):
            groups.append((str(model), str(segment), seg, mine[mine["segment"] == segment]))
    for model, segment, part, volume in groups:
        candidates = np.unique(part["total_score"].to_numpy())
        per_week = new_mqls_per_week(volume, candidates, cadence_days)
        by_capacity = by_precision = None
        for threshold, weekly in zip(candidates, per_week, strict=True):
            if (
                by_capacity is None
                and capacity_per_week is not None
                and weekly <= capacity_per_week
            ):
                by_capacity = {"threshold": int(threshold), "mqls_per_week": float(weekly)}
            hit = part[part["total_score"] >= threshold]
            if by_precision is None and target_precision is not None and len(hit) >= min_rows:
                precision = float(hit["label"].mean())
                if precision >= target_precision:
                    by_precision = {
                        "threshold": int(threshold),
                        "precision": precision,
                        "mqls_per_week": float(weekly),
                    }
        rows.append(
            {
                "scoring_model_id": model,
                "segment": segment,
                "rows": len(part),
                "by_capacity": by_capacity,
                "by_precision": by_precision,
            }
        )
    return rows


def band_changes(a: pd.DataFrame, b: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Leads whose band differs between two rulesets' scores as of ``as_of``."""
    keys = ["lead_id", "scoring_model_id"]
    left = a[a["as_of_date"] == as_of][[*keys, "band", "total_score"]]
    right = b[b["as_of_date"] == as_of][[*keys, "band", "total_score"]]
    joined = left.merge(right, on=keys, suffixes=("_a", "_b"))
    return joined[joined["band_a"] != joined["band_b"]].sort_values(keys)
