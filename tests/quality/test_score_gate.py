"""The score gate: real Great Expectations on the real warehouse, from the committed context."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import psycopg
import pytest

from lead_scoring.config import WarehouseConfig, gx_context_dir
from lead_scoring.quality.gates import GateFailed, score_gate

pytestmark = pytest.mark.integration
AS_OF = date(2026, 6, 1)
GOOD = [
    ("1", "default", 85, "hot", True, "abc123", "other", True),
    ("2", "default", 45, "warm", False, "abc123", "other", False),
    ("3", "default", 0, "cold", False, "abc123", "other", False),
    ("4", "default", 85, "warm", True, "abc123", "big", False),  # 85 is only warm in `big`
]
FIELDS = [
    "lead_id",
    "scoring_model_id",
    "total_score",
    "band",
    "is_mql",
    "ruleset_version",
    "segment",
    "is_sql",
]


@pytest.fixture
def context_dir(tmp_path: Path) -> Path:
    """A copy of the committed file context, so Data Docs of a test stay out of the checkout."""
    target = tmp_path / "expectations"
    shutil.copytree(gx_context_dir(), target, ignore=shutil.ignore_patterns("uncommitted"))
    return target


def load(warehouse: WarehouseConfig, rows: list[tuple[object, ...]], as_of: date = AS_OF) -> None:
    with psycopg.connect(warehouse.conninfo()) as conn:
        conn.execute(
            """
            create schema if not exists lead_scoring_rules;
            create schema if not exists lead_scoring_marts;
            create table if not exists lead_scoring_rules.scoring_models as
                select 'default'::text as scoring_model_id, 0 as score_floor, 100 as score_ceiling;
            create table if not exists lead_scoring_rules.score_thresholds (
                scoring_model_id text, segment text, warm_threshold integer,
                hot_threshold integer, mql_threshold integer, sql_threshold integer);
            insert into lead_scoring_rules.score_thresholds
                select 'default', '*', 40, 70, 60, 80
                where not exists (select from lead_scoring_rules.score_thresholds);
            insert into lead_scoring_rules.score_thresholds
                select 'default', 'big', 50, 90, 75, 95
                where (select count(*) from lead_scoring_rules.score_thresholds) = 1;
            create table if not exists lead_scoring_marts.fct_lead_scores (
                score_id text, lead_id text, scoring_model_id text, as_of_date date,
                total_score integer, band text, is_mql boolean, ruleset_version text,
                segment text, is_sql boolean);
            create table if not exists lead_scoring_marts.fct_lead_score_ledger (
                score_id text, as_of_date date, points numeric);
            create table if not exists lead_scoring_marts.lead_score_history as
                select *, null::timestamp as dbt_valid_from, null::timestamp as dbt_valid_to
                from lead_scoring_marts.fct_lead_scores where false;
            create table if not exists lead_scoring_marts.fct_lead_score_summary (
                as_of_date date);
            """
        )
        newest = conn.execute(
            "select max(dbt_valid_from)::date - 1 from lead_scoring_marts.lead_score_history"
        ).fetchone()
        with conn.cursor() as cursor:
            scored = [(f"{row[0]}|{row[1]}|{as_of}", *row, as_of) for row in rows]
            # the day's versions, each valid for that day only, and the day in the summary
            cursor.executemany(
                "insert into lead_scoring_marts.lead_score_history "
                f"(score_id, {', '.join(FIELDS)}, as_of_date, dbt_valid_from, dbt_valid_to) "
                f"values ({', '.join(['%s'] * (len(FIELDS) + 2))}, "
                "(%s::date + 1)::timestamp, (%s::date + 2)::timestamp)",
                [(*r, as_of, as_of) for r in scored],
            )
            cursor.execute(
                "insert into lead_scoring_marts.fct_lead_score_summary values (%s)", (as_of,)
            )
            if newest is None or newest[0] is None or as_of >= newest[0]:
                # the newest day's scores are the current ones
                cursor.execute("truncate lead_scoring_marts.fct_lead_scores")
                cursor.executemany(
                    "insert into lead_scoring_marts.fct_lead_scores "
                    f"(score_id, {', '.join(FIELDS)}, as_of_date) "
                    f"values ({', '.join(['%s'] * (len(FIELDS) + 2))})",
                    scored,
                )
            # Each score's ledger: the total in two lines (fit, then engagement).
            cursor.executemany(
                "insert into lead_scoring_marts.fct_lead_score_ledger values (%s, %s, %s)",
                [
                    (score[0], as_of, part)
                    for score in scored
                    if score[3] is not None
                    for part in (score[3] // 2, score[3] - score[3] // 2)
                ],
            )


def add_ledger_line(warehouse: WarehouseConfig, score_id: str, points: int) -> None:
    with psycopg.connect(warehouse.conninfo()) as conn:
        conn.execute(
            "insert into lead_scoring_marts.fct_lead_score_ledger values (%s, %s, %s)",
            (score_id, AS_OF, points),
        )


def test_good_scores_pass_and_data_docs_are_built(
    warehouse: WarehouseConfig, context_dir: Path
) -> None:
    load(warehouse, GOOD)
    load(
        warehouse,
        [("1", "default", 500, "hot", True, None, "other", False)],
        as_of=date(2026, 5, 1),
    )  # another day
    result = score_gate(warehouse, AS_OF, context_dir=context_dir)
    assert result.success
    assert not result.failures
    assert result.evaluated == 15
    assert result.data_docs
    assert Path(result.data_docs.removeprefix("file://")).exists()


def replace(
    index: int, **changes: object
) -> Callable[[list[tuple[object, ...]]], list[tuple[object, ...]]]:
    def apply(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
        row = list(rows[index])
        for name, value in changes.items():
            row[FIELDS.index(name)] = value
        return [*rows[:index], tuple(row), *rows[index + 1 :]]

    return apply


@pytest.mark.parametrize(
    ("poison", "expected"),
    [
        (lambda rows: [*rows, rows[0]], "expect_compound_columns_to_be_unique"),
        (replace(1, lead_id=None), "expect_column_values_to_not_be_null"),
        (replace(1, ruleset_version=None), "expect_column_values_to_not_be_null"),
        (replace(1, scoring_model_id=None), "scores.scoring_model_id_not_null"),
        (replace(2, total_score=None), "scores.total_score_not_null"),
        (replace(2, band=None), "scores.band_not_null"),
        (replace(1, band="lukewarm"), "expect_column_values_to_be_in_set"),
        (replace(0, total_score=130), "clamp"),
        (replace(1, total_score=75), "thresholds"),  # 75 is hot, the row says warm
        (replace(0, is_mql=False), "thresholds"),  # 85 >= the MQL threshold
        (replace(1, is_sql=True), "thresholds"),  # 45 is far below the SQL threshold
        (replace(3, band="hot"), "thresholds"),  # hot needs 90 in segment `big`
        (replace(3, segment="nowhere"), "thresholds"),  # falls back to `*`: 85 is hot there
        (
            lambda rows: [*rows, ("5", "enterprise", 10, "cold", False, "x", "other", False)],
            "every_model_every_lead",
        ),  # an enterprise row for one lead only
    ],
)
def test_each_expectation_fails_on_a_crafted_bad_batch(
    warehouse: WarehouseConfig,
    context_dir: Path,
    poison: Callable[[list[tuple[object, ...]]], list[tuple[object, ...]]],
    expected: str,
) -> None:
    load(warehouse, poison(GOOD))
    with pytest.raises(GateFailed) as failure:
        score_gate(warehouse, AS_OF, context_dir=context_dir)
    assert any(expected in reason for reason in failure.value.result.failures), (
        failure.value.result.failures
    )


def test_a_score_its_ledger_does_not_add_up_to_fails(
    warehouse: WarehouseConfig, context_dir: Path
) -> None:
    load(warehouse, GOOD)
    add_ledger_line(warehouse, f"2|default|{AS_OF}", 5)
    with pytest.raises(GateFailed) as failure:
        score_gate(warehouse, AS_OF, context_dir=context_dir)
    assert [f.split(":")[0] for f in failure.value.result.failures] == [
        "scores.ledger_sums_to_total"
    ]
    assert "1 offending rows" in failure.value.result.failures[0]


def test_no_scores_for_the_date_fails_the_gate(
    warehouse: WarehouseConfig, context_dir: Path
) -> None:
    load(warehouse, GOOD, as_of=date(2026, 5, 31))
    with pytest.raises(GateFailed, match=r"scores\.not_empty"):
        score_gate(warehouse, AS_OF, context_dir=context_dir)


def test_row_checks_cover_the_scores_the_build_changed_and_all_of_them_on_a_full_check(
    warehouse: WarehouseConfig, context_dir: Path
) -> None:
    """A score no build changed since an earlier date was checked when it was written: a
    production gate checks the set (counts, keys, every lead scored) and the changed rows; the
    weekly full check checks every row again and finds the old one that is out of its clamp."""
    load(warehouse, GOOD)
    earlier = date(2026, 5, 20)
    with psycopg.connect(warehouse.conninfo()) as conn:
        conn.execute(
            "insert into lead_scoring_marts.lead_score_history "
            f"(score_id, {', '.join(FIELDS)}, as_of_date, dbt_valid_from, dbt_valid_to) "
            "values (%s, '5', 'default', 150, 'hot', true, 'abc123', 'other', false, %s, "
            "(%s::date + 1)::timestamp, null)",
            (f"5|default|{earlier}", earlier, earlier),
        )
    result = score_gate(warehouse, AS_OF, context_dir=context_dir)
    assert result.success
    with pytest.raises(GateFailed) as failure:
        score_gate(warehouse, AS_OF, full_check=True, context_dir=context_dir)
    assert [f.split(":")[0] for f in failure.value.result.failures] == ["scores.within_clamp"]


def test_context_holds_the_placeholder_never_a_connection_string() -> None:
    config = (gx_context_dir() / "great_expectations.yml").read_text()
    assert "connection_string: ${WAREHOUSE_URL}" in config
    assert "postgresql" not in config


def flipped_to_hot(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """What a wrong rule does: every lead hot and an MQL (and consistent with the thresholds,
    so only the drift guard can stop it)."""
    return [(r[0], r[1], 95, "hot", True, r[5], r[6], False) for r in rows]


def drift_failures(result_failures: list[str]) -> list[str]:
    return sorted(f.split(":")[0] for f in result_failures)


def test_drift_beyond_the_bounds_is_blocked_until_approved(
    warehouse: WarehouseConfig, context_dir: Path
) -> None:
    day1, day2, day3 = date(2026, 6, 1), date(2026, 6, 2), date(2026, 6, 3)
    load(warehouse, GOOD, as_of=day1)
    first = score_gate(warehouse, day1, context_dir=context_dir)
    assert first.baseline_as_of is None  # nothing to drift from

    load(warehouse, flipped_to_hot(GOOD), as_of=day2)
    with pytest.raises(GateFailed) as blocked:
        score_gate(warehouse, day2, run_id="run 2", context_dir=context_dir)
    assert blocked.value.result.baseline_as_of == day1.isoformat()
    assert drift_failures(blocked.value.result.failures) == [
        "drift.band_changes",
        "drift.hot_share",
        "drift.mql_rate",
    ]

    # A person approves the run: it passes, the approval is kept, and day 2 is the new baseline.
    approved = score_gate(
        warehouse, day2, run_id="run 2 again", approve_drift=True, context_dir=context_dir
    )
    assert approved.success
    assert approved.failures == []
    assert drift_failures(approved.approved) == [
        "drift.band_changes",
        "drift.hot_share",
        "drift.mql_rate",
    ]
    load(warehouse, flipped_to_hot(GOOD), as_of=day3)
    assert score_gate(warehouse, day3, context_dir=context_dir).baseline_as_of == (day2.isoformat())
    with psycopg.connect(warehouse.conninfo()) as conn:
        kept = conn.execute(
            "select as_of_date, baseline_as_of_date, passed, approved "
            "from lead_scoring_ops.quality_gate_runs order by gate_run_id"
        ).fetchall()
    assert kept == [
        (day1, None, True, False),
        (day2, day1, False, False),
        (day2, day1, True, True),
        (day3, day2, True, False),
    ]


def test_approval_does_not_let_other_failures_through(
    warehouse: WarehouseConfig, context_dir: Path
) -> None:
    load(warehouse, GOOD, as_of=date(2026, 5, 31))
    score_gate(warehouse, date(2026, 5, 31), context_dir=context_dir)
    bad = [(*row[:5], None, *row[6:]) for row in flipped_to_hot(GOOD)]  # no ruleset version
    load(warehouse, bad)
    with pytest.raises(GateFailed) as blocked:
        score_gate(warehouse, AS_OF, approve_drift=True, context_dir=context_dir)
    assert drift_failures(blocked.value.result.failures) == ["scores.ruleset_version_not_null"]


def test_small_moves_pass_and_bounds_are_configurable(
    warehouse: WarehouseConfig, context_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(warehouse, GOOD, as_of=date(2026, 5, 31))
    score_gate(warehouse, date(2026, 5, 31), context_dir=context_dir)
    # One lead of four (25%) moves from cold to warm: beyond the default 20% band-change bound.
    moved = replace(2, total_score=45, band="warm")(GOOD)
    load(warehouse, moved)
    with pytest.raises(GateFailed) as blocked:
        score_gate(warehouse, AS_OF, context_dir=context_dir)
    assert drift_failures(blocked.value.result.failures) == ["drift.band_changes"]
    monkeypatch.setenv("LEAD_SCORING_QUALITY_MAX_BAND_CHANGE_SHARE", "0.3")
    assert score_gate(warehouse, AS_OF, context_dir=context_dir).success
