"""Learned points: fit the rules' weights on what happened, and keep them explainable.

The features are the rules themselves: for each lead-cutoff, how many times each rule counted
(its units in the ledger). A regularised logistic regression on them gives each rule a weight
in log-odds; scaled so the learned scores span the model's bands the way the current ones do
and rounded to whole points, that is a draft ruleset revenue ops can read, edit and backtest
like any other. A gradient-boosting model on the same features, in the same run, is the
reference: how much an unexplainable model would gain is then a number, not an argument.

A rule that separates converters almost perfectly on its own is not a great rule; it is
usually a field recorded after the fact. Such rules are flagged and get no points in the draft.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
from scipy.optimize import minimize  # type: ignore[import-untyped]
from scipy.special import expit  # type: ignore[import-untyped]
from sklearn.ensemble import HistGradientBoostingClassifier  # type: ignore[import-untyped]
from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

from lead_scoring.backtest.scoring import Ruleset

RULE_SEEDS = {
    "demographic": "demographic_rules.csv",
    "behavioral": "behavioral_rules.csv",
    "bonus": "engagement_bonus_rules.csv",
    "decay": "decay_rules.csv",
}
MAX_POINTS = 100


@dataclass
class Fit:
    scoring_model_id: str
    rules: pd.DataFrame  # rule_id, rule_type, current points, weight, learned points, flags
    auc_logistic: float | None
    auc_boosting: float | None
    auc_current: float | None
    train_rows: int
    test_rows: int
    leakage: list[dict[str, Any]] = field(default_factory=list)


def signed_logistic(
    x: np.ndarray, y: np.ndarray, signs: np.ndarray, regularisation: float = 1.0
) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression whose weights keep the sign each rule has in the
    ruleset (+1: at least 0, -1: at most 0). Without it, correlated rules trade weights of
    opposite signs (a demo request "worth" -17 points beside a contact-sales form worth +63),
    which no one could explain to a sales team and which the score's floor then clips.
    Returns (weights, intercept). scikit-learn's LogisticRegression has no bounds; this is
    scipy's L-BFGS-B on the same objective (penalty on the weights, not on the intercept)."""
    k = x.shape[1]
    target = y.astype(float)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:k], theta[k]
        z = x @ w + b
        value = (
            float(np.sum(np.logaddexp(0.0, z) - target * z)) + 0.5 * float(w @ w) / regularisation
        )
        residual = expit(z) - target
        grad = np.append(x.T @ residual + w / regularisation, residual.sum())
        return value, grad

    bounds = [(0.0, None) if sign > 0 else (None, 0.0) for sign in signs] + [(None, None)]
    start = np.zeros(k + 1)
    done = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return done.x[:k], float(done.x[k])


def feature_matrix(units: pd.DataFrame, frame: pd.DataFrame, model: str) -> pd.DataFrame:
    """One row per lead-cutoff of ``frame`` (the population of ``model``), a column per rule."""
    part = units[units["scoring_model_id"] == model]
    wide = part.pivot_table(
        index=["as_of_date", "lead_id"], columns="rule_id", values="units", aggfunc="sum"
    )
    rows = frame[frame["scoring_model_id"] == model].set_index(["as_of_date", "lead_id"])
    return wide.reindex(rows.index).fillna(0.0)


def _auc(y: np.ndarray, score: np.ndarray) -> float | None:
    return float(roc_auc_score(y, score)) if len(np.unique(y)) == 2 else None


def fit_model(
    units: pd.DataFrame,
    frame: pd.DataFrame,
    ruleset: Ruleset,
    model: str,
    train: list[date],
    hot_threshold: float,
    *,
    leakage_auc: float = 0.9,
    regularisation: float = 1.0,
    seed: int = 0,
) -> Fit:
    """Learned points for ``model``'s rules, fitted on the ``train`` cutoffs' population."""
    rows = frame[frame["scoring_model_id"] == model].set_index(["as_of_date", "lead_id"])
    features = feature_matrix(units, frame, model)
    in_train = rows["cutoff"].isin(train).to_numpy()
    y = rows["label"].to_numpy()
    points = ruleset.rule_points()
    points = points[points["scoring_model_id"] == model].set_index("rule_id")
    rules = points[["rule_type", "points", "description"]].copy()
    rules["fires_share"] = 0.0
    rules["single_rule_auc"] = np.nan
    rules["weight"] = np.nan
    leakage: list[dict[str, Any]] = []
    usable: list[str] = []
    for rule_id in features.columns:
        if rule_id not in rules.index:
            continue
        x = features[rule_id].to_numpy()
        fires = float((x[in_train] != 0).mean()) if in_train.any() else 0.0
        rules.loc[rule_id, "fires_share"] = fires
        alone = _auc(y[in_train], x[in_train]) if fires > 0 else None
        if alone is not None:
            rules.loc[rule_id, "single_rule_auc"] = alone
        if alone is not None and max(alone, 1 - alone) >= leakage_auc and fires >= 0.01:
            leakage.append(
                {
                    "rule_id": rule_id,
                    "single_rule_auc": alone,
                    "fires_share": fires,
                    "why": "separates converters almost perfectly on its own: check that it is "
                    "recorded before the outcome, not after",
                }
            )
            continue
        if fires > 0:
            usable.append(rule_id)
    flagged = {item["rule_id"] for item in leakage}
    rules["leakage"] = rules.index.isin(flagged)
    rules["learned_points"] = rules["points"]
    rules.loc[list(flagged), "learned_points"] = 0
    auc_lr = auc_gb = None
    usable = [r for r in usable if rules.loc[r, "points"] != 0]
    x_all = features[usable].to_numpy() if usable else np.zeros((len(features), 0))
    if usable and len(np.unique(y[in_train])) == 2:
        signs = np.sign(rules.loc[usable, "points"].to_numpy())
        coef, intercept = signed_logistic(x_all[in_train], y[in_train], signs, regularisation)
        weights = pd.Series(coef, index=usable)
        rules.loc[usable, "weight"] = weights
        auc_lr = _auc(y[~in_train], x_all[~in_train] @ coef + intercept)
        boosting = HistGradientBoostingClassifier(max_iter=200, random_state=seed)
        boosting.fit(x_all[in_train], y[in_train])
        auc_gb = _auc(y[~in_train], boosting.predict_proba(x_all[~in_train])[:, 1])
        linear = x_all[in_train] @ weights.to_numpy()
        # the learned scores' 95th percentile lands on the model's hot threshold, as a scale
        # the bands already use
        top = float(np.quantile(linear, 0.95)) if len(linear) else 0.0
        scale = hot_threshold / top if top > 0 else 10.0
        rules.loc[usable, "learned_points"] = (
            (weights * scale).round().clip(-MAX_POINTS, MAX_POINTS)
        )
    auc_now = _auc(y[~in_train], rows["total_score"].to_numpy()[~in_train])
    return Fit(
        scoring_model_id=model,
        rules=rules.reset_index(),
        auc_logistic=auc_lr,
        auc_boosting=auc_gb,
        auc_current=auc_now,
        train_rows=int(in_train.sum()),
        test_rows=int((~in_train).sum()),
        leakage=leakage,
    )


def _scaled(value: str, ratio: float) -> str:
    """A cap (max_points) scaled like the points it caps; empty stays empty."""
    if value.strip() == "":
        return value
    return str(round(float(value) * ratio))


def write_learned_ruleset(ruleset: Ruleset, fits: list[Fit], folder: Path) -> Path:
    """The ruleset's seeds with the learned points. Caps scale with the points they cap (a
    bonus's or a decay's ``max_points``; a behavioural group's cap by the change of its rules'
    positive points), so a learned weight is not clipped back by a cap sized for the old one.
    Signs are kept by the fit, and so is each rule's component."""
    folder.mkdir(parents=True, exist_ok=True)
    files = ruleset.seed_files()
    learned = pd.concat([f.rules.assign(scoring_model_id=f.scoring_model_id) for f in fits])
    old_new = {
        (row.scoring_model_id, row.rule_id): (float(row.points), int(row.learned_points))
        for row in learned.itertuples()
    }
    for seed in RULE_SEEDS.values():
        table = pd.read_csv(files[seed], dtype=str, keep_default_na=False)
        for index, row in table.iterrows():
            key = (row["scoring_model_id"], row["rule_id"])
            if key not in old_new:
                continue
            old, new = old_new[key]
            table.loc[index, "points"] = str(new)
            if "max_points" in table.columns and old:
                table.loc[index, "max_points"] = _scaled(row["max_points"], new / old)
        table.to_csv(folder / seed, index=False)
    behavioral = pd.read_csv(files["behavioral_rules.csv"], dtype=str, keep_default_na=False)
    groups = pd.read_csv(files["behavioral_rule_groups.csv"], dtype=str, keep_default_na=False)
    for index, group in groups.iterrows():
        members = behavioral[
            (behavioral["scoring_model_id"] == group["scoring_model_id"])
            & (behavioral["rule_group"] == group["rule_group"])
        ]
        pairs = [old_new.get((group["scoring_model_id"], r)) for r in members["rule_id"]]
        before = sum(max(p[0], 0) for p in pairs if p)
        after = sum(max(p[1], 0) for p in pairs if p)
        if before > 0 and after > 0:
            groups.loc[index, "max_points"] = _scaled(group["max_points"], after / before)
    groups.to_csv(folder / "behavioral_rule_groups.csv", index=False)
    written = {*RULE_SEEDS.values(), "behavioral_rule_groups.csv"}
    for name, path in files.items():
        if name not in written:
            (folder / name).write_bytes(path.read_bytes())
    return folder
