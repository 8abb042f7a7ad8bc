"""``lead-scoring explain``: the ledger lines behind a lead's score on any date.

The warehouse keeps the current lines only (``fct_lead_score_ledger``); the lines of a past
date are recomputed by the SQL function every build installs
(``lead_scoring_marts.explain_lead_score``, see ``dbt_project/macros/explain.sql``), from the
warehouse as it is now. Beside the lines this prints the score stored for that date (the
version of ``lead_score_history`` current then) and says whether the two agree, and why they
might not: rows loaded since that are dated on or before the day, or rules edited since.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from lead_scoring.config import ConfigError, WarehouseConfig
from lead_scoring.schemas import MARTS
from lead_scoring.warehouse import connect

FUNCTION = f"{MARTS}.explain_lead_score"
LINE_COLUMNS = (
    "scoring_model_id",
    "rule_id",
    "rule_type",
    "component",
    "description",
    "window_start",
    "window_end",
    "counted_count",
    "points_after_caps",
    "decay_points",
    "points",
)


@dataclass
class ModelExplanation:
    """One scoring model's lines for the lead, and the score stored for that date."""

    scoring_model_id: str
    lines: list[dict[str, Any]] = field(default_factory=list)
    stored_total: int | None = None
    stored_since: date | None = None
    stored_ruleset: str | None = None
    current_ruleset: str | None = None

    @property
    def total(self) -> int:
        return sum(int(line["points"] or 0) for line in self.lines)

    @property
    def agrees(self) -> bool:
        return self.stored_total is not None and self.stored_total == self.total


@dataclass
class Explanation:
    lead_id: str
    as_of: date
    models: list[ModelExplanation]


def explain(
    warehouse: WarehouseConfig, lead_id: str, as_of: date | None = None, model: str | None = None
) -> Explanation:
    """The lines of ``lead_id`` (every model, or ``model``) as of ``as_of`` (default today)."""
    today = datetime.now(UTC).date()
    as_of = as_of or today
    if as_of > today:
        raise ConfigError(f"--as-of {as_of} is after today ({today}, UTC)")
    cutoff = datetime.combine(as_of + timedelta(days=1), time())
    with connect(warehouse) as conn:
        found = conn.execute(
            "select to_regprocedure(%s)", (f"{FUNCTION}(text, date, text)",)
        ).fetchone()
        if not found or found[0] is None:
            raise ConfigError(
                f"{FUNCTION} does not exist yet: build the dbt project once (make demo, or the "
                "DAG) before explaining a score"
            )
        versions = {
            str(row[0]): row
            for row in conn.execute(
                f"select scoring_model_id, total_score, as_of_date, ruleset_version "
                f"from {MARTS}.lead_score_history where lead_id = %s "
                "and (%s::text is null or scoring_model_id = %s) and dbt_valid_from <= %s "
                "and (dbt_valid_to is null or dbt_valid_to > %s)",
                (lead_id, model, model, cutoff, cutoff),
            )
        }
        rulesets = {
            str(model_id): str(version)
            for model_id, version in conn.execute(
                f"select scoring_model_id, max(ruleset_version) from {MARTS}.fct_lead_scores "
                "group by 1"
            )
        }
        cursor = conn.execute(
            f"select {', '.join(LINE_COLUMNS)} from {FUNCTION}(%s, %s, %s)",
            (lead_id, as_of, model),
        )
        names = [column.name for column in cursor.description or []]
        lines = [dict(zip(names, row, strict=True)) for row in cursor]
    if not lines and not versions:
        raise ConfigError(f"lead {lead_id!r} has no score as of {as_of}" + (
            f" under scoring model {model!r}" if model else ""
        ))  # fmt: skip
    models: dict[str, ModelExplanation] = {}
    for model_id in sorted({str(line["scoring_model_id"]) for line in lines} | set(versions)):
        explained = models.setdefault(model_id, ModelExplanation(model_id))
        explained.current_ruleset = rulesets.get(model_id)
        if model_id in versions:
            _, total, since, ruleset = versions[model_id]
            explained.stored_total, explained.stored_since = int(total), since
            explained.stored_ruleset = str(ruleset)
    for line in lines:
        models[str(line["scoring_model_id"])].lines.append(line)
    return Explanation(lead_id, as_of, list(models.values()))


def render(explanation: Explanation) -> list[str]:
    """The explanation as text: per model, its lines, their sum and the stored score."""
    out = [f"lead {explanation.lead_id} as of {explanation.as_of} (lines recomputed now)"]
    for model in explanation.models:
        out.append("")
        out.append(f"scoring model {model.scoring_model_id}")
        out.append(f"  {'points':>6}  {'component':<11} {'rule':<28} what")
        # the rules' lines first, by component; the caps, floor and clamp derived from them last
        derived = ("group_cap", "decay_floor", "clamp")
        ordered = sorted(
            model.lines,
            key=lambda line: (
                str(line["rule_type"]) in derived,
                str(line["component"]),
                str(line["rule_id"]),
                str(line["window_start"]),
            ),
        )
        for line in ordered:
            window = ""
            if line["window_start"] is not None:
                window = f" [{line['window_start']}..{line['window_end']}]"
            counted = f" x{line['counted_count']}" if line["counted_count"] is not None else ""
            out.append(
                f"  {int(line['points'] or 0):>6}  {line['component'] or '':<11} "
                f"{line['rule_id']:<28} {line['description'] or ''}{counted}{window}"
            )
        out.append(f"  {model.total:>6}  total of the lines")
        if model.stored_total is None:
            out.append("          no score was stored for that date (the lead was not scored)")
        elif model.agrees:
            out.append(
                f"          = the score stored for that date (its version since "
                f"{model.stored_since}, ruleset {model.stored_ruleset})"
            )
        else:
            why = "rows loaded since that are dated on or before the day"
            if model.current_ruleset and model.current_ruleset != model.stored_ruleset:
                why = (
                    f"the rules changed since (ruleset {model.stored_ruleset} then, "
                    f"{model.current_ruleset} now), or {why}"
                )
            out.append(
                f"          differs from the score stored for that date ({model.stored_total}, "
                f"version since {model.stored_since}): {why}"
            )
    return out
