"""What dbt's data tests check: in a production run, the rows it loaded or changed; in a full
check (the weekly run, or `full_checks`), the whole history. Real dbt on real PostgreSQL, the
tested tables made by hand so a bad old row can be planted where the loader never would."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import psycopg
import pytest

from lead_scoring.config import WarehouseConfig
from lead_scoring.runtime.dbt_tools import CHECK_SCOPE_SETTING, run_dbt, with_setting

pytestmark = pytest.mark.integration
AS_OF = date(2026, 6, 30)


def plant(warehouse: WarehouseConfig) -> None:
    """A good row of today and a bad one from long ago, in a raw table (a null property in
    the property history, loaded ten days ago) and in the current scores (a score of a model
    that does not exist, from an as-of date before the one being built)."""
    with psycopg.connect(warehouse.conninfo()) as conn:
        conn.execute(
            """
            create schema raw_crm;
            create table raw_crm.contact_property_history (
                contact_id text, property text, changed_at timestamptz, loaded_at timestamptz);
            insert into raw_crm.contact_property_history values
                ('1', 'jobtitle', now(), now()),
                ('2', null, now() - interval '10 days', now() - interval '10 days');
            create schema lead_scoring_rules;
            create table lead_scoring_rules.scoring_models as select 'default' as scoring_model_id;
            create schema lead_scoring_marts;
            create table lead_scoring_marts.dim_leads as select '1' as lead_id union select '2';
            create table lead_scoring_marts.fct_lead_scores (
                score_id text, lead_id text, scoring_model_id text, as_of_date date);
            insert into lead_scoring_marts.fct_lead_scores values
                ('a', '1', 'default', date '2026-06-30'), ('b', '2', 'ghost', date '2026-06-20');
            create table lead_scoring_marts.fct_lead_score_ledger (score_id text, as_of_date date);
            """
        )


def failing_tests(warehouse: WarehouseConfig, target: Path) -> set[str]:
    done = run_dbt(
        warehouse,
        target,
        "test",
        "--select",
        "source:hubspot.contact_property_history,test_name:not_null",
        "config.meta.scored_rows:as_of_date",
        as_of=AS_OF,
    )
    output = done.stdout + done.stderr
    assert "Done. PASS=" in output, output[-3000:]
    return set(re.findall(r"Failure in test (\S+)", output))


def test_a_production_run_checks_its_own_rows_and_the_full_check_all_of_them(
    warehouse: WarehouseConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant(warehouse)
    monkeypatch.delenv("PGOPTIONS", raising=False)
    assert failing_tests(warehouse, tmp_path / "changed") == set()

    monkeypatch.setenv("PGOPTIONS", with_setting(None, CHECK_SCOPE_SETTING, "changed"))
    assert failing_tests(warehouse, tmp_path / "changed-set") == set()

    monkeypatch.setenv("PGOPTIONS", with_setting(None, CHECK_SCOPE_SETTING, "full"))
    failed = failing_tests(warehouse, tmp_path / "full")
    assert "source_not_null_hubspot_contact_property_history_property" in failed, failed
    assert any(name.startswith("relationships_fct_lead_scores") for name in failed), failed
