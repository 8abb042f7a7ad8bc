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
                lead_id text, scoring_model_id text, as_of_date date, total_score integer,
                band text, is_mql boolean, ruleset_version text, segment text, is_sql boolean);
            """
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                f"insert into lead_scoring_marts.fct_lead_scores ({', '.join(FIELDS)}, as_of_date) "
                f"values ({', '.join(['%s'] * (len(FIELDS) + 1))})",
                [(*row, as_of) for row in rows],
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
    assert result.evaluated == 10
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
        (replace(1, band="lukewarm"), "expect_column_values_to_be_in_set"),
        (replace(0, total_score=130), "clamp"),
        (replace(1, total_score=75), "thresholds"),  # 75 is hot, the row says warm
        (replace(0, is_mql=False), "thresholds"),  # 85 >= the MQL threshold
        (replace(1, is_sql=True), "thresholds"),  # 45 is far below the SQL threshold
        (replace(3, band="hot"), "thresholds"),  # hot needs 90 in segment `big`
        (replace(3, segment="nowhere"), "thresholds"),  # falls back to `*`: 85 is hot there
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


def test_no_scores_for_the_date_fails_the_gate(
    warehouse: WarehouseConfig, context_dir: Path
) -> None:
    load(warehouse, GOOD, as_of=date(2026, 5, 31))
    with pytest.raises(GateFailed, match="no rows to validate"):
        score_gate(warehouse, AS_OF, context_dir=context_dir)


def test_context_holds_the_placeholder_never_a_connection_string() -> None:
    config = (gx_context_dir() / "great_expectations.yml").read_text()
    assert "connection_string: ${WAREHOUSE_URL}" in config
    assert "postgresql" not in config
