"""The backtest report: one static HTML file (charts embedded as images, no server, no script).

Charts: lift by decile, calibration curve, score distribution by band, MQL volume over time and
the rules' contributions (current points against learned points). Tables: the headline
metrics per ruleset and model beside a random score and the gradient-boosting reference,
conversion by band, MQL conversion by band and segment, threshold advice, leakage flags and
the leads that change band.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd  # type: ignore[import-untyped]

BAND_COLOURS = {"cold": "#8fb3d9", "warm": "#f2b45c", "hot": "#d9534f"}
PALETTE = ("#1f5f8b", "#d9822b", "#3a9d5d", "#8e44ad")


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="chart" src="data:image/png;base64,{data}">'


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "<p class='muted'>none</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _models(summary: dict[str, Any]) -> list[str]:
    first = next(iter(summary["rulesets"].values()))
    return sorted(first["models"])


def _lift_chart(summary: dict[str, Any], model: str) -> str:
    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    names = list(summary["rulesets"])
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        deciles = summary["rulesets"][name]["models"].get(model, {}).get("lift_by_decile", [])
        axis.bar(
            [d["decile"] + i * width for d in deciles],
            [d["lift"] or 0 for d in deciles],
            width=width,
            label=name,
            color=PALETTE[i % len(PALETTE)],
        )
    axis.axhline(1.0, color="#555", linewidth=1, linestyle="--", label="random")
    axis.set_xlabel("score decile within each cutoff (1 = top 10%)")
    axis.set_ylabel("lift (conversion rate / base rate)")
    axis.set_title(f"Lift by decile — {model}")
    axis.set_xticks(range(1, 11))
    axis.legend(fontsize=8)
    return _png(figure)


def _calibration_chart(summary: dict[str, Any], model: str) -> str:
    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    for i, name in enumerate(summary["rulesets"]):
        points = summary["rulesets"][name]["models"].get(model, {}).get("calibration", [])
        axis.plot(
            [p["score"] for p in points],
            [p["rate"] for p in points],
            marker="o",
            label=name,
            color=PALETTE[i % len(PALETTE)],
        )
    axis.set_xlabel("mean score of the bin (tenths of the holdout by score)")
    axis.set_ylabel("conversion rate")
    axis.set_title(f"Calibration — {model}")
    axis.legend(fontsize=8)
    return _png(figure)


def _distribution_chart(frame: pd.DataFrame, name: str, model: str, holdout: set[str]) -> str:
    part = frame[(frame["scoring_model_id"] == model) & frame["cutoff"].astype(str).isin(holdout)]
    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    data = [part.loc[part["band"] == band, "total_score"] for band in BAND_COLOURS]
    axis.hist(
        data, bins=30, stacked=True, color=list(BAND_COLOURS.values()), label=list(BAND_COLOURS)
    )
    axis.set_xlabel("total score")
    axis.set_ylabel("lead-cutoffs")
    axis.set_title(f"Score distribution by band — {name}, {model}")
    axis.legend(fontsize=8)
    return _png(figure)


def _mql_chart(summary: dict[str, Any], model: str) -> str:
    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    for i, name in enumerate(summary["rulesets"]):
        rows = [
            r for r in summary["rulesets"][name]["mql_volume"] if r["scoring_model_id"] == model
        ]
        axis.plot(
            [r["as_of_date"] for r in rows],
            [r["per_week"] for r in rows],
            marker="o",
            label=name,
            color=PALETTE[i % len(PALETTE)],
        )
    axis.set_ylabel("new MQLs per week")
    axis.set_title(f"MQL volume over time — {model}")
    axis.tick_params(axis="x", labelrotation=45, labelsize=7)
    axis.legend(fontsize=8)
    return _png(figure)


def _contribution_chart(fit: dict[str, Any]) -> str:
    rules = sorted(fit["rules"], key=lambda r: r["points"] or 0)
    figure, axis = plt.subplots(figsize=(6.4, max(2.5, 0.22 * len(rules) + 1)))
    y = range(len(rules))
    axis.barh(
        [i - 0.2 for i in y],
        [r["points"] for r in rules],
        height=0.4,
        label="current",
        color=PALETTE[0],
    )
    axis.barh(
        [i + 0.2 for i in y],
        [r["learned_points"] for r in rules],
        height=0.4,
        label="learned",
        color=PALETTE[1],
    )
    axis.set_yticks(list(y))
    axis.set_yticklabels([r["rule_id"] for r in rules], fontsize=7)
    axis.axvline(0, color="#555", linewidth=0.8)
    axis.set_xlabel("points")
    axis.set_title(f"Rule contributions — {fit['scoring_model_id']}")
    axis.legend(fontsize=8)
    return _png(figure)


STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:0}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.85rem}
td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}th{background:#f4f4f4}
.muted{color:#777}.charts{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}
.charts img{max-width:520px;height:auto}
.warn{background:#fff3cd;border:1px solid #e0c060;padding:.5rem 1rem}
"""


def write_report(
    summary: dict[str, Any],
    frames: dict[str, pd.DataFrame],
    scores: dict[str, pd.DataFrame],
    out_dir: Path,
) -> Path:
    """Write ``report.html`` into ``out_dir`` and return its path."""
    holdout = set(summary["holdout_cutoffs"])
    parts = [
        f"<h1>{html.escape(summary['title'])}</h1>",
        f"<p class='muted'>generated {summary['generated_at']} · {summary['leads']} leads · "
        f"cutoffs {summary['cutoffs'][0]} … {summary['cutoffs'][-1]} "
        f"({summary['options']['cadence']}); learned on {len(summary['train_cutoffs'])}, "
        f"held out {len(holdout)} (the latest) · outcome "
        f"<b>{summary['options']['outcome']}</b> within {summary['options']['maturity_days']} "
        "days of the cutoff</p>",
    ]
    headline = []
    for name, result in summary["rulesets"].items():
        for model, m in result["models"].items():
            headline.append({"ruleset": name, "model": model, **m})
    for model, m in summary["random_floor"].items():
        headline.append({"ruleset": "random score", "model": model, **m})
    parts.append("<h2>Headline (holdout)</h2>")
    parts.append(
        _table(
            headline,
            [
                "ruleset",
                "model",
                "rows",
                "positives",
                "base_rate",
                "auc",
                "precision_at_10pct",
                "lift_at_10pct",
            ],
        )
    )
    if summary["fits"]:
        parts.append("<h3>The cost of staying explainable (holdout AUC)</h3>")
        parts.append(
            _table(
                summary["fits"],
                [
                    "scoring_model_id",
                    "auc_current",
                    "auc_logistic",
                    "auc_boosting",
                    "train_rows",
                    "test_rows",
                ],
            )
        )
    leaks = [
        dict(leak, model=f["scoring_model_id"]) for f in summary["fits"] for leak in f["leakage"]
    ]
    left_out = {n: r["left_out_attributes_recorded_later"] for n, r in summary["rulesets"].items()}
    if leaks or any(left_out.values()):
        parts.append("<h2>Leakage</h2><div class='warn'>")
        parts.append(_table(leaks, ["model", "rule_id", "single_rule_auc", "fires_share", "why"]))
        parts.append(
            "<p>Lead-cutoffs left out because the lead's attributes were recorded after the "
            "cutoff (scoring them would use what nobody knew then): "
            + ", ".join(f"{html.escape(n)} {v}" for n, v in left_out.items())
            + "</p></div>"
        )
    for model in _models(summary):
        parts.append(f"<h2>Model {html.escape(model)}</h2><div class='charts'>")
        parts.append(_lift_chart(summary, model))
        parts.append(_calibration_chart(summary, model))
        for name, frame in frames.items():
            parts.append(_distribution_chart(frame, name, model, holdout))
        parts.append(_mql_chart(summary, model))
        for fit in summary["fits"]:
            if fit["scoring_model_id"] == model:
                parts.append(_contribution_chart(fit))
        parts.append("</div>")
        for name, result in summary["rulesets"].items():
            m = result["models"].get(model, {})
            parts.append(f"<h3>{html.escape(name)}: conversion by band</h3>")
            parts.append(_table(m.get("by_band", []), ["band", "rows", "rate"]))
            parts.append(f"<h3>{html.escape(name)}: MQL → outcome by band and segment</h3>")
            parts.append(_table(m.get("mql_conversion", []), ["band", "segment", "mqls", "rate"]))
            advice = [
                {
                    "segment": t["segment"],
                    "rows": t["rows"],
                    "capacity_threshold": (t["by_capacity"] or {}).get("threshold"),
                    "capacity_mqls_per_week": (t["by_capacity"] or {}).get("mqls_per_week"),
                    "precision_threshold": (t["by_precision"] or {}).get("threshold"),
                    "precision": (t["by_precision"] or {}).get("precision"),
                }
                for t in result["thresholds"]
                if t["scoring_model_id"] == model
            ]
            parts.append(f"<h3>{html.escape(name)}: MQL threshold advice</h3>")
            parts.append(_table(advice, list(advice[0]) if advice else []))
    changes = summary["band_changes"]
    if changes["compared"]:
        parts.append(
            f"<h2>Leads that change band ({' → '.join(map(html.escape, changes['compared']))}, "
            f"as of {changes['as_of_date']})</h2><p>{changes['leads']} leads; the list is in "
            "band_changes.csv beside this report.</p>"
        )
        parts.append(_table(changes["matrix"], ["band_a", "band_b", "leads"]))
    page = out_dir / "report.html"
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        + html.escape(summary["title"])
        + f"</title><style>{STYLE}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )
    return page
