"""Re-scoring a day that was already scored (issue 20, defect 1): after a rules edit, twice, and
as hourly runs of one day whose scores change. Real PostgreSQL, real ``dbt build`` as the DAG
runs it. Before the fix, the snapshot wrote a second version with the same as-of cutoff and
its uniqueness test failed every later build."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lead_scoring.config import WarehouseConfig, dbt_project_dir
from lead_scoring.load.batch import load_batch
from lead_scoring.load.tables import WEB_EVENTS
from lead_scoring.runtime.dbt_tools import build_as_of
from tests.scoring.test_scoring_model import T, at, scored_warehouse, web  # noqa: F401

pytestmark = pytest.mark.integration

HISTORY = (
    "select lead_id, scoring_model_id, total_score, band, ruleset_version, dbt_valid_from, "
    "dbt_valid_to from lead_scoring_marts.lead_score_history order by 1, 2, 6"
)


def build(
    warehouse: WarehouseConfig, target: Path, as_of: Any, project: Path | None = None
) -> None:
    done = build_as_of(warehouse, target, as_of, project=project)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def history(warehouse: WarehouseConfig) -> list[tuple[Any, ...]]:
    with psycopg.connect(warehouse.conninfo()) as conn:
        return conn.execute(HISTORY).fetchall()


def edited_project(tmp_path: Path) -> Path:
    """A copy of the dbt project with one page category's description changed: a new
    ruleset version, the same points."""
    project = tmp_path / "edited_project"
    shutil.copytree(
        dbt_project_dir(), project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages")
    )
    seed = project / "seeds" / "page_categories.csv"
    lines = seed.read_text().splitlines()
    lines[1] = lines[1] + " (edited)"
    seed.write_text("\n".join(lines) + "\n")
    return project


def versions_at(rows: list[tuple[Any, ...]], cutoff: Any) -> dict[tuple[str, str], int]:
    counted: dict[tuple[str, str], int] = {}
    for lead, model, *_, valid_from, _valid_to in rows:
        if valid_from == cutoff:
            counted[(lead, model)] = counted.get((lead, model), 0) + 1
    return counted


def test_rescoring_a_day_keeps_one_version_per_day_however_often_it_is_built(
    scored_warehouse: WarehouseConfig,  # noqa: F811
    tmp_path: Path,
) -> None:
    warehouse = scored_warehouse
    build(warehouse, tmp_path / "t1", T - timedelta(days=1))
    build(warehouse, tmp_path / "t2", T)
    first = history(warehouse)
    cutoff = at(T + timedelta(days=1), 0).replace(tzinfo=None)
    leads_at_t = versions_at(first, cutoff)
    assert leads_at_t
    assert set(leads_at_t.values()) == {1}

    # A rules edit, built twice for the day already scored: the second build changes nothing.
    edited = edited_project(tmp_path)
    edited_rows: list[tuple[Any, ...]] = []
    for attempt in range(2):
        build(warehouse, tmp_path / f"edit{attempt}", T, project=edited)
        rows = history(warehouse)
        at_t = versions_at(rows, cutoff)
        assert set(at_t.values()) == {1}, f"build {attempt + 1}: {at_t}"
        # every lead's version of T carries the edited ruleset; nothing before T moved
        new_versions = {(r[1], r[4]) for r in rows if r[5] == cutoff}
        assert len(new_versions) == 2  # one ruleset version per scoring model
        assert not new_versions & {(r[1], r[4]) for r in first if r[5] == cutoff}
        assert [r for r in rows if r[5] < cutoff] == [
            (*r[:6], cutoff if r[6] is None or r[6] >= cutoff else r[6])
            for r in first
            if r[5] < cutoff
        ]
        if attempt:
            assert rows == edited_rows
        edited_rows = rows

    # Back to the original rules: the history is exactly what the first build of T wrote.
    build(warehouse, tmp_path / "back", T)
    assert history(warehouse) == first

    # Later that day the student requests a demo: the next hourly run scores T again, and
    # the student's version of T is replaced, not doubled.
    late = web("w99", "b1", at(T, 15), "track", event="Demo Requested", path="/demo")
    load_batch(warehouse, table=WEB_EVENTS, source="test.web_events", records=[late])
    build(warehouse, tmp_path / "hourly", T)
    rows = history(warehouse)
    assert set(versions_at(rows, cutoff).values()) == {1}
    before = {(r[0], r[1]): r for r in first if r[6] is None}
    current = {(r[0], r[1]): r for r in rows if r[6] is None}
    assert current.keys() == before.keys()
    assert current[("2", "default")][2] > before[("2", "default")][2]
    assert current[("2", "default")][5] == cutoff
