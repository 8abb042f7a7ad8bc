"""Every DAG file imports cleanly, defines a DAG, has no cycle, and parsing it stays light."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
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


EXTRACTS = {"extract_contacts", "extract_email_events", "load_web_events"}


def test_lead_scoring_stages_run_in_order(dagbag) -> None:  # type: ignore[no-untyped-def]
    """rules -> extract (three tasks side by side) -> turn -> raw gate -> every dbt node ->
    score gate -> sync -> publish, and nothing skips a stage."""
    tasks = dagbag.dags["lead_scoring"].task_dict
    dbt_tasks = {t for t in tasks if t.startswith("dbt_build.")}
    assert {
        "dbt_build.dbt_producer_watcher",
        "dbt_build.fct_lead_scores.run",
        "dbt_build.fct_lead_scores.test",
        "dbt_build.scoring_models.seed",
    } <= dbt_tasks
    assert set(tasks) == EXTRACTS | dbt_tasks | {"check_rules", "take_turn", "check_raw",
                                                 "check_scores", "sync_crm", "publish"}  # fmt: skip
    assert tasks["check_rules"].upstream_task_ids == set()  # a broken ruleset reads nothing
    for load in EXTRACTS:
        assert tasks[load].upstream_task_ids == {"check_rules"}, load  # side by side
        assert tasks[load].downstream_task_ids == {"take_turn"}, load
    assert tasks["take_turn"].downstream_task_ids == {"check_raw"}
    assert tasks["take_turn"].mode == "reschedule"  # a waiting run holds no worker slot
    # every dbt node runs after the raw gate, and only after it
    assert dbt_tasks <= tasks["check_raw"].get_flat_relative_ids(upstream=False)
    roots = {t for t in dbt_tasks if not tasks[t].upstream_task_ids & dbt_tasks}
    assert all(tasks[t].upstream_task_ids == {"check_raw"} for t in roots), roots
    # one dbt build (the producer) runs every node; each other dbt task reports one node's
    # result after it, so a run that takes one task at a time never waits on itself
    producer = "dbt_build.dbt_producer_watcher"
    assert roots == {producer}
    assert tasks[producer].retries == 0  # a retried build is skipped, which would end green
    assert dbt_tasks - {producer} <= tasks[producer].get_flat_relative_ids(upstream=False)
    assert dbt_tasks <= tasks["check_scores"].get_flat_relative_ids(upstream=True)
    assert tasks["check_scores"].downstream_task_ids == {"sync_crm"}
    assert tasks["sync_crm"].upstream_task_ids == {"check_scores"}
    assert tasks["sync_crm"].downstream_task_ids == {"publish"}
    assert tasks["publish"].downstream_task_ids == set()
    # the test environment; production default is 2 (LEAD_SCORING_TASK_RETRIES)
    assert {t.retries for t in tasks.values()} == {0}
    assert all(t.retry_exponential_backoff for t in tasks.values())
    assert all(t.on_failure_callback for t in tasks.values())


def test_each_stage_declares_what_it_produces(dagbag) -> None:  # type: ignore[no-untyped-def]
    tasks = dagbag.dags["lead_scoring"].task_dict

    def produced(task_id: str) -> set[str]:
        return {asset.name for asset in tasks[task_id].outlets}

    assert produced("extract_contacts") == {"raw_crm.contacts", "raw_crm.contact_property_history"}
    assert produced("extract_email_events") == {"raw_crm.email_events"}
    assert produced("load_web_events") == {"raw_analytics.web_events", "raw_analytics.identifies"}
    assert "lead_scoring_marts.fct_lead_scores" in produced("check_scores")
    assert produced("sync_crm") == {"crm.lead_scores"}
    assert produced("publish") == {"lead_scoring_ops.pipeline_runs"}
    for task_id in (
        *EXTRACTS,
        "check_rules",
        "take_turn",
        "check_raw",
        "check_scores",
        "sync_crm",
        "publish",
    ):
        assert tasks[task_id].doc_md, f"{task_id} has no task docs"


def test_params_are_validated_with_a_clear_error(dagbag) -> None:  # type: ignore[no-untyped-def]
    import copy

    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.dags["lead_scoring"]
    assert {"as_of", "dry_run", "approve_score_drift", "full_refresh"} <= set(dag.params)

    def conf(**values: object) -> dict[str, object]:
        """What a trigger with this conf resolves to (as `airflow dags trigger` does)."""
        params = copy.deepcopy(dag.params)
        params.update(values)
        return dict(params.validate())

    today = datetime.now(UTC).date()
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert conf(as_of="2026-06-01", dry_run=True)["as_of"] == "2026-06-01"
    assert conf(as_of=today.isoformat())["as_of"] == today.isoformat()
    for name, bad in (("as_of", "2026-13-45"), ("as_of", "yesterday"), ("dry_run", "yes"),
                      ("full_refresh", 1), ("approve_score_drift", "true"),
                      ("as_of", tomorrow), ("as_of", "2099-01-01")):  # fmt: skip
        with pytest.raises(ParamValidationError, match=name):
            conf(**{name: bad})


def test_the_dbt_build_checks_all_history_on_the_weekly_full_check_or_when_asked(dagbag) -> None:  # type: ignore[no-untyped-def]
    """The one dbt build's session options carry the as-of date and the scope of its data
    tests (dbt_project/macros/check_scope.sql), rendered as Airflow renders them per run."""
    dag = dagbag.dags["lead_scoring"]
    producer = dag.task_dict["dbt_build.dbt_producer_watcher"]
    template = dag.get_template_env().from_string(producer.env["PGOPTIONS"])

    def options(start: datetime, end: datetime, *, full_checks: bool = False) -> str:
        params = {"as_of": None, "full_checks": full_checks}
        return template.render(
            params=params, ds=start.date().isoformat(),
            data_interval_start=start, data_interval_end=end,
        )  # fmt: skip

    sunday = datetime(2026, 11, 8, tzinfo=UTC)
    assert options(sunday - timedelta(hours=1), sunday) == (
        "-c lead_scoring.as_of=2026-11-07 -c lead_scoring.check_scope=full"
    )
    assert options(sunday, sunday + timedelta(hours=1)).endswith("check_scope=changed")
    monday = sunday + timedelta(days=1)
    assert options(monday, monday + timedelta(hours=1), full_checks=True).endswith("=full")
    assert dag.params["full_checks"] is False


def test_the_api_server_refuses_a_future_as_of_at_trigger(dagbag) -> None:  # type: ignore[no-untyped-def]
    """What the API server holds is the serialized DAG, never the DAG's code: a trigger is
    checked against the params' JSON schema alone, so the bound on ``as_of`` must be there."""
    from airflow.exceptions import ParamValidationError
    from airflow.serialization.serialized_objects import DagSerialization

    served = DagSerialization.from_dict(DagSerialization.to_dict(dagbag.dags["lead_scoring"]))
    today = datetime.now(UTC).date()
    for day in (today, today - timedelta(days=400), date(2026, 1, 1)):
        served.params.deep_merge({"as_of": day.isoformat()}).validate()
    served.params.deep_merge({"as_of": None}).validate()
    for future in (today + timedelta(days=1), today + timedelta(days=40), date(2099, 1, 1)):
        with pytest.raises(ParamValidationError, match=f"as_of: '{future}' does not match"):
            served.params.deep_merge({"as_of": future.isoformat()}).validate()


def test_the_backtest_dag_is_weekly_with_validated_params(dagbag) -> None:  # type: ignore[no-untyped-def]
    import copy

    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.dags["lead_scoring_backtest"]
    assert set(dag.task_dict) == {"backtest"}
    assert dag.schedule == "@weekly"
    assert dag.task_dict["backtest"].doc_md

    def conf(**values: object) -> dict[str, object]:
        params = copy.deepcopy(dag.params)
        params.update(values)
        return dict(params.validate())

    assert conf(outcome="customer", draft_ruleset="my_draft")["outcome"] == "customer"
    for name, bad in (("outcome", "won"), ("cadence", "daily"), ("maturity_days", 0),
                      ("max_cutoffs", 1), ("draft_ruleset", "../etc"),
                      ("target_precision", 1.5)):  # fmt: skip
        with pytest.raises(ParamValidationError, match=name):
            conf(**{name: bad})


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_parsing_the_dag_file_imports_no_heavy_or_stateful_modules(
    dbt_manifest: Path, dag_file: Path
) -> None:
    """Great Expectations, the CRM client, the DB driver and the backtest's numeric stack are
    imported inside tasks only (httpx is not checked: Airflow's own task SDK imports it)."""
    probe = (
        "import sys, runpy; runpy.run_path(sys.argv[1]);"
        "heavy = [m for m in ('great_expectations', 'psycopg', 'lead_scoring.crm.client',"
        " 'lead_scoring.quality.gates', 'lead_scoring.sync.hubspot',"
        " 'lead_scoring.sync.engine', 'lead_scoring.sync.salesforce', 'sklearn',"
        " 'matplotlib', 'lead_scoring.backtest.runner') if m in sys.modules];"
        "print('HEAVY=' + ','.join(heavy))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(dag_file)],
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
