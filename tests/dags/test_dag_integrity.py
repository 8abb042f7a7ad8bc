"""Every DAG file imports cleanly, defines a DAG, has no cycle, and parsing it stays light."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
DAG_FILES = sorted(DAGS.glob("*.py"))


@pytest.fixture(scope="module")
def dagbag(dbt_manifest: Path):  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_each_file_defines_at_least_one_dag(dagbag, dag_file: Path) -> None:  # type: ignore[no-untyped-def]
    assert any(Path(dag.fileloc) == dag_file for dag in dagbag.dags.values())


def test_no_cycles_and_sane_defaults(dagbag) -> None:  # type: ignore[no-untyped-def]
    for dag in dagbag.dags.values():
        dag.check_cycle()
        assert dag.tags, f"{dag.dag_id} has no tags"
        assert dag.doc_md, f"{dag.dag_id} has no doc_md"
        assert dag.catchup is False
        assert dag.max_active_runs == 1


def test_lead_scoring_wiring(dagbag) -> None:  # type: ignore[no-untyped-def]
    """Loads feed every dbt node; the sync waits for every dbt node and test, and the gate."""
    tasks = dagbag.dags["lead_scoring"].task_dict
    dbt_tasks = {t for t in tasks if t.startswith("dbt_build.")}
    assert {
        "dbt_build.fct_lead_scores_model_build",
        "dbt_build.assert_one_score_per_lead_and_model_test",
        "dbt_build.scoring_models_seed_build",
    } <= dbt_tasks
    for load in ("extract_contacts", "extract_email_events", "load_web_events"):
        assert dbt_tasks <= tasks[load].get_flat_relative_ids(upstream=False), load
    sync_upstream = tasks["sync_crm"].get_flat_relative_ids(upstream=True)
    assert dbt_tasks | {"check_scores"} <= sync_upstream
    assert tasks["check_scores"].downstream_task_ids == {"sync_crm"}
    assert dbt_tasks <= tasks["check_scores"].get_flat_relative_ids(upstream=True)
    # the test environment; production default is 1 (LEAD_SCORING_TASK_RETRIES)
    assert {t.retries for t in tasks.values()} == {0}


def test_parsing_the_dag_file_imports_no_heavy_or_stateful_modules(dbt_manifest: Path) -> None:
    """Great Expectations, the CRM client and the DB driver are imported inside tasks only
    (httpx is not checked: Airflow's own task SDK imports it)."""
    probe = (
        "import sys, runpy; runpy.run_path(sys.argv[1]);"
        "heavy = [m for m in ('great_expectations', 'psycopg', 'lead_scoring.crm.client',"
        " 'lead_scoring.quality.gates', 'lead_scoring.sync.hubspot',"
        " 'lead_scoring.sync.engine', 'lead_scoring.sync.salesforce') if m in sys.modules];"
        "print('HEAVY=' + ','.join(heavy))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(DAGS / "lead_scoring.py")],
        capture_output=True,
        text=True,
        env={**os.environ, "AIRFLOW_CONN_WAREHOUSE": "", "AIRFLOW_CONN_CRM": ""},
        check=True,
    )
    marker = [line for line in done.stdout.splitlines() if line.startswith("HEAVY=")]
    assert marker == ["HEAVY="]


def test_airflow_plugin_loader_does_not_execute_the_package() -> None:
    """plugins/.airflowignore keeps Airflow from running every module as a top-level plugin."""
    from airflow.configuration import conf
    from airflow.sdk._shared.plugins_manager.plugins_manager import (
        _load_plugins_from_plugin_directory,
    )

    before = set(sys.modules)
    plugins, errors = _load_plugins_from_plugin_directory(
        plugins_folder=conf.get("core", "plugins_folder"), ignore_file_syntax="glob"
    )
    assert (plugins, errors) == ([], {})
    assert not {
        m
        for m in set(sys.modules) - before
        if m in ("cli", "config", "tasks", "__main__", "dbt_tools")
    }
