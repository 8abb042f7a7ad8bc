"""Score a ruleset as of past dates with the product's own dbt project.

A ruleset is a seed folder: its CSVs replace the production seeds of the same name, the others
are kept (a draft can change one file). Each ruleset gets a copy of the dbt project under
``.local/backtest/`` and schemas of its own (``bt_<name>_staging``, ``bt_<name>_marts``, ...),
so a backtest never touches the production marts, and scores exactly the way production does:
same models, same point-in-time rules (events up to the cutoff, attributes known by then).

Cutoffs are scored oldest first (MQL/SQL dates carry forward from one as-of date to the next),
each with one ``dbt run``; the seeds are loaded and tested once (``dbt build -s tag:rules``), so
a draft with a broken rule file fails with dbt's own message before any scoring.
"""

from __future__ import annotations

import csv
import logging
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
import psycopg
from psycopg import sql

from lead_scoring.config import WarehouseConfig, dbt_project_dir, local_dir
from lead_scoring.runtime.dbt_tools import profile_environment, run_dbt
from lead_scoring.runtime.environment import NO_TELEMETRY, child_environment
from lead_scoring.warehouse import connect

log = logging.getLogger(__name__)

PROJECT_PARTS = ("dbt_project.yml", "profiles.yml", "models", "macros", "tests")
SCORE_MODELS = "+fct_lead_scores +backtest_rule_units"
# The backtest's own model (every cutoff's rule points), added to each workspace's project.
RULE_UNITS_MODEL = Path(__file__).with_name("backtest_rule_units.sql")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


class BacktestError(RuntimeError):
    """A backtest cannot run as asked; the message says why."""


@dataclass(frozen=True)
class Ruleset:
    """A named seed folder (``None``: the production seeds)."""

    name: str
    folder: Path | None = None

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.name):
            raise BacktestError(
                f"ruleset name {self.name!r}: lowercase letters, digits and _ (at most 31), "
                "starting with a letter (it names the ruleset's schemas)"
            )
        if self.folder is not None and not self.folder.is_dir():
            raise BacktestError(f"ruleset {self.name}: {self.folder} is not a folder")

    @property
    def schema(self) -> str:
        return f"bt_{self.name}"

    def seed_files(self) -> dict[str, Path]:
        """Seed file name -> the file this ruleset uses for it."""
        files = {p.name: p for p in sorted((dbt_project_dir() / "seeds").glob("*.csv"))}
        if self.folder is not None:
            overlay = {p.name: p for p in sorted(self.folder.glob("*.csv"))}
            unknown = sorted(set(overlay) - set(files))
            if unknown:
                raise BacktestError(
                    f"ruleset {self.name}: {', '.join(unknown)} is not a seed of the project "
                    f"(seeds: {', '.join(sorted(files))})"
                )
            files.update(overlay)
        return files

    def rule_points(self) -> pd.DataFrame:
        """(scoring_model_id, rule_id, rule_type, points) of every rule with points."""
        files = self.seed_files()
        frames = []
        for seed, rule_type in (
            ("demographic_rules.csv", "demographic"),
            ("behavioral_rules.csv", "behavioral"),
            ("engagement_bonus_rules.csv", "bonus"),
            ("decay_rules.csv", "decay"),
        ):
            frame = pd.read_csv(files[seed], dtype=str, keep_default_na=False)
            frame = frame[["scoring_model_id", "rule_id", "points", "description"]].copy()
            frame["rule_type"] = rule_type
            frame["points"] = pd.to_numeric(frame["points"], errors="coerce").fillna(0)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)


def prepare_workspace(ruleset: Ruleset, root: Path) -> Path:
    """A copy of the dbt project with the ruleset's seeds and its own schema; returns its path."""
    project = root / ruleset.name / "project"
    if project.exists():
        shutil.rmtree(project)
    project.mkdir(parents=True)
    source = dbt_project_dir()
    for part in PROJECT_PARTS:
        origin = source / part
        if origin.is_dir():
            shutil.copytree(origin, project / part)
        else:
            shutil.copy2(origin, project / part)
    (project / "models" / "backtest").mkdir()
    shutil.copy2(RULE_UNITS_MODEL, project / "models" / "backtest" / RULE_UNITS_MODEL.name)
    seeds = project / "seeds"
    seeds.mkdir()
    for doc in (source / "seeds").glob("*.[ym]*"):
        shutil.copy2(doc, seeds / doc.name)
    for name, path in ruleset.seed_files().items():
        shutil.copy2(path, seeds / name)
    profile = (project / "profiles.yml").read_text()
    if "schema: lead_scoring\n" not in profile:
        raise BacktestError("dbt_project/profiles.yml no longer sets `schema: lead_scoring`")
    (project / "profiles.yml").write_text(
        profile.replace("schema: lead_scoring\n", f"schema: {ruleset.schema}\n")
    )
    return project


def drop_schemas(warehouse: WarehouseConfig, ruleset: Ruleset) -> None:
    """Forget an earlier backtest of this ruleset (its scores would carry MQL dates over)."""
    with connect(warehouse, autocommit=True) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "select nspname from pg_namespace where nspname = %s or nspname like %s",
                (ruleset.schema, ruleset.schema + r"\_%"),
            )
        ]
        for name in names:
            conn.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(name)))


def _dbt(warehouse: WarehouseConfig, project: Path, *args: str) -> None:
    done = run_dbt(warehouse, project / "target", *args, project=project)
    if done.returncode != 0:
        lines = [
            ln for ln in done.stdout.splitlines() if "ERROR" in ln or "Error" in ln or "FAIL" in ln
        ]
        detail = "\n".join(lines[-15:]) or done.stdout[-3000:] + done.stderr[-2000:]
        raise BacktestError(f"dbt {' '.join(args[:1])} failed in {project}:\n{detail}")


Progress = Callable[[str], None]


def score_cutoffs(
    warehouse: WarehouseConfig,
    ruleset: Ruleset,
    cutoffs: Sequence[date],
    *,
    root: Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Score ``ruleset`` as of each cutoff (oldest first) into its own schemas."""
    root = root or local_dir() / "backtest" / "workspaces"
    project = prepare_workspace(ruleset, root)
    drop_schemas(warehouse, ruleset)
    say = progress or log.info
    started = time.monotonic()
    _dbt(
        warehouse,
        project,
        "build",
        "--select",
        "tag:rules",
        "--indirect-selection",
        "cautious",
        "--exclude-resource-type",
        "unit_test",
    )
    timings: list[float] = []
    ordered = [c.isoformat() for c in sorted(cutoffs)]
    command = [
        sys.executable,
        "-m",
        "lead_scoring.backtest.dbt_loop",
        "--project",
        str(project),
        "--select",
        SCORE_MODELS,
        *ordered,
    ]
    env = child_environment({**NO_TELEMETRY, **profile_environment(warehouse)})
    errors: list[str] = []
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as child:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("scored "):
                _, day, seconds = line.split()
                timings.append(float(seconds))
                say(
                    f"  {ruleset.name}: scored as of {day} ({len(timings)}/{len(ordered)}, "
                    f"{float(seconds):.1f}s)"
                )
            elif line.strip():
                errors.append(line.rstrip())
    if child.returncode != 0:
        detail = "\n".join(e for e in errors if "error" in e.lower())[-3000:] or "\n".join(
            errors[-20:]
        )
        raise BacktestError(f"scoring {ruleset.name} failed ({project}):\n{detail}")
    return {"seconds": time.monotonic() - started, "cutoff_seconds": timings}


def read_scores(
    warehouse: WarehouseConfig, ruleset: Ruleset, cutoffs: Sequence[date]
) -> pd.DataFrame:
    """Every score of the ruleset's backtest: one row per cutoff x lead x model, the score
    version that was current at each cutoff (how BI reads any past date)."""
    query = sql.SQL(
        "select cutoffs.as_of_date, history.lead_id, history.scoring_model_id, "
        "history.segment, history.total_score, history.band, history.fit_grade, "
        "history.is_mql, history.mql_date, history.is_sql, history.ruleset_version "
        "from unnest(%s::date[]) as cutoffs (as_of_date) "
        "inner join {}.lead_score_history as history "
        "on history.dbt_valid_from <= (cutoffs.as_of_date + 1)::timestamp "
        "and (history.dbt_valid_to is null "
        "or history.dbt_valid_to > (cutoffs.as_of_date + 1)::timestamp)"
    ).format(sql.Identifier(f"{ruleset.schema}_marts"))
    return _frame(warehouse, query, (list(cutoffs),))


def read_rule_units(warehouse: WarehouseConfig, ruleset: Ruleset) -> pd.DataFrame:
    """Per as-of date, lead, model and rule: the points the rule gave and its *units* (how
    many times it counted). These are the features a learned ruleset is fitted on."""
    query = sql.SQL(
        "select as_of_date, lead_id, scoring_model_id, rule_id, rule_type, points "
        "from {}.backtest_rule_units"
    ).format(sql.Identifier(ruleset.schema))
    lines = _frame(warehouse, query)
    points = ruleset.rule_points()[["scoring_model_id", "rule_id", "points"]].rename(
        columns={"points": "rule_points"}
    )
    lines = lines.merge(points, on=["scoring_model_id", "rule_id"], how="left")
    # A line's points over the rule's points: 1 for a matched attribute; for an activity rule
    # its capped count, weighed by the half-life decay when the model has one; the steps of a
    # bonus or a decay. A learned ruleset's points times these units is what dbt will score.
    per_rule = lines["rule_points"].where(lines["rule_points"] != 0)
    lines["units"] = (lines["points"] / per_rule).abs().fillna(0.0)
    lines.loc[lines["rule_type"] == "demographic", "units"] = 1.0
    return lines


def read_outcomes(warehouse: WarehouseConfig) -> pd.DataFrame:
    """Each lead's creation, attribute-recording time and lifecycle dates, from the raw contacts.

    The latest version holds every date reached. The attributes were known from the earlier of
    the first stored version and the time the CRM's property history says every scored
    attribute had been set: a warehouse that began with one full extraction stores each
    contact's first version at that extraction, long after most attributes were entered."""
    stages = ("marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer", "other")
    dates = ", ".join(
        f"nullif(latest.properties ->> 'hs_lifecyclestage_{s}_date', '') as {s}_at" for s in stages
    )
    query = sql.SQL(
        "with versions as (select contact_id, min(updated_at) as first_version_at "
        "from raw_crm.contacts group by contact_id), "
        "recorded as (select contact_id, max(first_set_at) as all_set_at from ("
        "  select contact_id, property, min(changed_at) as first_set_at "
        "  from raw_crm.contact_property_history where property <> 'lifecyclestage' "
        "  group by contact_id, property) as per_property group by contact_id), "
        "firsts as (select versions.contact_id, least(versions.first_version_at, "
        "recorded.all_set_at) as attributes_known_at from versions "
        "left join recorded using (contact_id)), "
        "latest as (select distinct on (contact_id) contact_id, properties, archived "
        "from raw_crm.contacts order by contact_id, updated_at desc) "
        "select latest.contact_id as lead_id, "
        "nullif(latest.properties ->> 'createdate', '') as created_at, "
        "firsts.attributes_known_at, " + dates + " from latest join firsts using (contact_id) "
        "where not latest.archived"
    )
    frame = _frame(warehouse, query)
    for column in frame.columns:
        if column.endswith("_at"):
            frame[column] = pd.to_datetime(
                frame[column], utc=True, errors="coerce", format="ISO8601"
            )
    return frame


def _frame(
    warehouse: WarehouseConfig, query: sql.SQL | sql.Composed, params: Any = None
) -> pd.DataFrame:
    with connect(warehouse) as conn, conn.cursor() as cur:
        try:
            cur.execute(query, params)
        except psycopg.errors.UndefinedTable as exc:
            raise BacktestError(f"nothing scored yet: {exc}".strip()) from None
        columns = [d.name for d in cur.description or ()]
        return pd.DataFrame(cur.fetchall(), columns=columns)


def write_ruleset(folder: Path, tables: dict[str, pd.DataFrame]) -> None:
    """Write seed CSVs (a draft ruleset) the way revenue ops would edit them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_csv(folder / name, index=False, quoting=csv.QUOTE_MINIMAL)
