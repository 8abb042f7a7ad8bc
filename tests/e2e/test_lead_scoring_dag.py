"""The whole lead_scoring DAG through dag.test(): real Airflow, dbt (via Cosmos), GX, PostgreSQL
and HTTP to the sandbox. What a user would notice: scores in the warehouse, the same values on
the CRM contacts, no CRM writes when nothing changed, and no CRM writes when the gate fails."""

from __future__ import annotations

import logging
import re
import shutil
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lead_scoring.config import WarehouseConfig
from lead_scoring.runtime.demo import task_states
from lead_scoring.runtime.environment import query_metadata
from lead_scoring.sandbox import Sandbox
from lead_scoring.synth import SynthConfig
from tests.helpers import crm_writes, dag_environment, load_dag

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

END = date(2026, 6, 1)
CONTACTS = 300


@pytest.fixture
def dag_env(
    warehouse: WarehouseConfig,
    sandbox: Sandbox,
    airflow_metadata: str,
    dbt_manifest: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    summary = dag_environment(
        SynthConfig(contacts=CONTACTS, seed=11, end=END), warehouse, sandbox, tmp_path, monkeypatch
    )
    return {"dag": load_dag(), "airflow_metadata": airflow_metadata, "summary": summary}


def run(env: dict[str, Any], mark_success: str | None = None, **conf: Any) -> dict[str, str]:
    """One DAG run; tasks whose id fully matches ``mark_success`` are marked done, not run."""
    dag_run = env["dag"].test(
        logical_date=datetime.combine(END, datetime.min.time(), tzinfo=UTC),
        run_conf=conf,
        mark_success_pattern=mark_success,
    )
    env["run_id"] = dag_run.run_id
    states = task_states(env["airflow_metadata"])
    states["__run__"] = str(dag_run.state)
    return states


def run_summary(warehouse: WarehouseConfig) -> dict[str, Any]:
    """The newest row of lead_scoring_ops.pipeline_runs."""
    with psycopg.connect(warehouse.conninfo()) as conn:
        cursor = conn.execute(
            "select * from lead_scoring_ops.pipeline_runs order by recorded_at desc limit 1"
        )
        names = [column.name for column in cursor.description or []]
        row = cursor.fetchone()
    assert row is not None, "no run summary was written"
    return dict(zip(names, row, strict=True))


def asset_events(airflow_metadata: str) -> Counter[str]:
    """How many events each asset received, from Airflow's metadata."""
    rows = query_metadata(
        airflow_metadata,
        "select asset.name, count(*) from asset_event "
        "join asset on asset.id = asset_event.asset_id group by asset.name",
    )
    return Counter({str(name): int(n) for name, n in rows})


def scores(warehouse: WarehouseConfig) -> dict[tuple[str, str], tuple[int, str]]:
    """(lead, CRM property prefix of the scoring model) -> (score, band), the current scores."""
    with psycopg.connect(warehouse.conninfo()) as conn:
        rows = conn.execute(
            "select s.lead_id, m.crm_property_prefix, s.total_score, s.band "
            "from lead_scoring_marts.fct_lead_scores as s "
            "join lead_scoring_rules.scoring_models as m using (scoring_model_id)"
        ).fetchall()
    return {(str(r[0]), str(r[1])): (int(r[2]), str(r[3])) for r in rows}


def test_dag_scores_syncs_writes_nothing_when_unchanged_and_holds_back_a_drifting_ruleset(
    dag_env: dict[str, Any],
    warehouse: WarehouseConfig,
    sandbox: Sandbox,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One warehouse, run after run (a full run costs a minute and a half, so the scenarios
    share their first run): the first run scores and syncs; the second, with nothing changed,
    writes nothing; then a ruleset change that flips most leads to hot is held back by the
    score gate until it is approved."""
    from lead_scoring.runtime.dbt_tools import parse_project

    caplog.set_level(logging.INFO)
    states = run(dag_env)
    out, err = capfd.readouterr()
    logged = out + err + caplog.text  # what the tasks printed and logged
    assert "quality gate score_gate: passed" in logged  # the capture holds the task logs
    assert "CRM sync for" in logged
    assert sandbox.token not in logged
    assert warehouse.password is not None
    assert warehouse.password not in logged
    assert states.pop("__run__") == "success"
    assert set(states.values()) == {"success"}, states
    assert len(states) > 15  # extracts, every dbt node, gate, sync

    summary = dag_env["summary"]
    dirty = Counter(summary.dirty)
    assert summary.dirty, "the dataset carries dirty records, and the run must survive them"
    first = scores(warehouse)
    leads = sorted({lead for lead, _ in first})
    prefixes = sorted({prefix for _, prefix in first})
    # One row per lead x each shipped model; contacts with a malformed email are quarantined.
    assert prefixes == ["dw_ent", "dw_lead"]
    assert len(leads) == summary.contacts_created - dirty["bad_email"]
    assert len(first) == len(leads) * len(prefixes)
    assert {band for _, band in first.values()} == {"cold", "warm", "hot"}
    with psycopg.connect(warehouse.conninfo()) as conn:
        raw = conn.execute(
            "select (select count(*) from raw_crm.contacts),"
            " (select count(*) from raw_analytics.web_events),"
            " (select count(*) from raw_crm.email_events),"
            " (select count(distinct ruleset_version) - count(distinct scoring_model_id)"
            "  from lead_scoring_marts.fct_lead_scores)"
        ).fetchone()
        quarantined = dict(
            conn.execute(
                "select source, count(*) from (select source from raw_crm.quarantine "
                "union all select source from raw_analytics.quarantine) as q group by 1"
            ).fetchall()
        )
    assert raw is not None
    web_dirt = sum(dirty[k] for k in ("malformed_json", "unknown_event_type", "future_event",
                                      "huge_event"))  # fmt: skip
    assert quarantined == {
        k: v
        for k, v in {
            "hubspot.contacts": dirty["bad_email"],
            "hubspot.email_events": dirty["unknown_email_type"],
            "segment.web_events": web_dirt,
        }.items()
        if v
    }
    assert raw[0] == summary.contacts_created - dirty["bad_email"]
    assert raw[1] == summary.web_events - web_dirt - dirty["duplicate_event"]
    assert raw[2] == summary.email_events - dirty["unknown_email_type"]
    assert raw[3] == 0  # one ruleset version per scoring model

    # The CRM now holds exactly the warehouse's values on every contact, for every model.
    properties = [f"{p}_{field}" for p in prefixes for field in ("score", "band")]
    held = sandbox.portal.get_contacts(leads, properties)
    assert {
        (lead, p): (int(v["properties"][f"{p}_score"]), v["properties"][f"{p}_band"])
        for lead, v in held.items()
        for p in prefixes
    } == first
    after_first = crm_writes(sandbox)
    # ceil(n / 100) calls, each contact written once with all its models' properties
    assert after_first == (-(-len(leads) // 100), len(leads))

    # The run summary says what the run did, and each stage announced what it produced.
    published = run_summary(warehouse)
    assert (published["status"], published["failed_stage"]) == ("succeeded", None)
    assert published["as_of_date"] == END
    text = published["summary"]
    assert f"scores (default): {len(leads):,} leads" in text
    assert f"CRM sync (hubspot, succeeded): {len(first):,} changed" in text
    assert "raw_gate: passed" in text
    assert "score_gate: passed" in text
    assert "index.html" in published["data_docs"]
    loaded = {load["source"]: load for load in published["details"]["loads"]}
    assert loaded["segment.web_events"]["rows_inserted"] == raw[1]
    events = asset_events(dag_env["airflow_metadata"])
    assert {
        "raw_crm.contacts",
        "raw_crm.email_events",
        "raw_analytics.web_events",
        "lead_scoring_marts.fct_lead_scores",
        "crm.lead_scores",
        "lead_scoring_ops.pipeline_runs",
    } <= set(events), events

    # Second run, nothing changed: same scores, no duplicated raw rows, zero CRM writes.
    states = run(dag_env)
    assert states.pop("__run__") == "success"
    assert scores(warehouse) == first
    with psycopg.connect(warehouse.conninfo()) as conn:
        again = conn.execute(
            "select (select count(*) from raw_crm.contacts),"
            " (select count(*) from raw_analytics.web_events),"
            " (select count(*) from raw_crm.email_events)"
        ).fetchone()
        sync = conn.execute(
            "select changed, sent from lead_scoring_ops.crm_sync_runs "
            "order by started_at desc limit 1"
        ).fetchone()
    assert again == raw[:3]
    assert sync == (0, 0)
    assert crm_writes(sandbox) == after_first

    # A ruleset change that flips most leads to hot waits for approval, even on the
    # warehouse's first day, with no earlier day to compare with: the drift guard compares with
    # what the CRM was last sent (before, it passed silently and rewrote every contact).
    before = first
    writes = crm_writes(sandbox)
    hot_before = sum(band == "hot" for _, band in before.values()) / len(before)
    assert hot_before < 0.5

    # Revenue ops lower every hot threshold to 5 points: most leads become hot.
    project = tmp_path / "dbt_project"
    shutil.copytree(
        Path(__file__).resolve().parents[2] / "dbt_project",
        project,
        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"),
    )
    thresholds = project / "seeds" / "score_thresholds.csv"
    lines = thresholds.read_text().splitlines()
    header = lines[0].split(",")
    hot = header.index("hot_threshold")
    warm = header.index("warm_threshold")
    changed = [lines[0]]
    for line in lines[1:]:
        cells = line.split(",")
        cells[warm], cells[hot] = "1", "5"
        changed.append(",".join(cells))
    thresholds.write_text("\n".join(changed) + "\n")
    monkeypatch.setenv("LEAD_SCORING_DBT_PROJECT_DIR", str(project))
    parse_project()
    dag_env["dag"] = load_dag()

    marts_published = asset_events(dag_env["airflow_metadata"])[
        "lead_scoring_marts.fct_lead_scores"
    ]
    states = run(dag_env)
    assert states.pop("__run__") == "failed"
    assert states["dbt_build.fct_lead_scores.run"] == "success"
    assert states["check_scores"] == "failed"
    assert states["sync_crm"] == "upstream_failed"
    assert states["publish"] == "upstream_failed"
    assert crm_writes(sandbox) == writes  # the CRM still holds the old scores
    # the refused marts are not announced as produced; the failure summary says why
    assert asset_events(dag_env["airflow_metadata"])["lead_scoring_marts.fct_lead_scores"] == (
        marts_published
    )
    summary = run_summary(warehouse)
    assert (summary["status"], summary["failed_stage"]) == ("failed", "score gate")
    assert "not run: sync, publish (the CRM was not written)" in summary["summary"]
    assert "drift.hot_share" in summary["summary"]
    flipped = scores(warehouse)
    assert sum(band == "hot" for _, band in flipped.values()) / len(flipped) > 0.5
    with psycopg.connect(warehouse.conninfo()) as conn:
        verdict = conn.execute(
            "select failures::text from lead_scoring_ops.quality_gate_runs "
            "where checkpoint = 'score_gate' order by gate_run_id desc limit 1"
        ).fetchone()
    assert verdict is not None
    assert "drift.hot_share" in verdict[0]
    assert "drift.band_changes" in verdict[0]

    # Approved, the run goes through and the CRM gets the new bands. (The scores of that day
    # are built already: only the gate and the sync need to run again, as when an operator
    # re-runs them with the approval.)
    states = run(
        dag_env,
        mark_success=r"extract_.*|load_web_events|take_turn|check_raw|dbt_build\..*",
        approve_score_drift=True,
    )
    assert states.pop("__run__") == "success"
    assert set(states.values()) == {"success"}, states
    prefixes = sorted({prefix for _, prefix in flipped})
    leads = sorted({lead for lead, _ in flipped})
    held = sandbox.portal.get_contacts(leads, [f"{p}_band" for p in prefixes])
    assert {
        (lead, p): v["properties"][f"{p}_band"] for lead, v in held.items() for p in prefixes
    } == {key: band for key, (_, band) in flipped.items()}


def test_poisoned_extract_stops_the_run_before_dbt_and_the_crm(
    dag_env: dict[str, Any], warehouse: WarehouseConfig, sandbox: Sandbox
) -> None:
    # The day's export is mostly garbage: the loader quarantines every bad line (nothing is
    # lost), and the raw gate refuses a run whose loads quarantined more than 5% of their rows.
    events = Path(dag_env["summary"].events_dir)
    files = sorted(events.rglob("*.jsonl"))
    good_lines = sum(len(f.read_text().splitlines()) for f in files)
    garbage = [f'{{"type": "page", "messageId": "junk-{i}", "timestamp": "not a time"'
               for i in range(good_lines // 5)]  # fmt: skip
    (files[-1].parent / "zz-poisoned.jsonl").write_text("\n".join(garbage) + "\n")

    states = run(dag_env)
    assert states.pop("__run__") == "failed"
    assert states["check_raw"] == "failed"
    dbt_states = {task: state for task, state in states.items() if task.startswith("dbt_build.")}
    assert dbt_states.pop("dbt_build.dbt_producer_watcher") == "upstream_failed"  # no dbt build
    assert dbt_states
    assert set(dbt_states.values()) <= {"upstream_failed", "skipped"}, dbt_states
    assert states["check_scores"] == "upstream_failed"
    assert states["sync_crm"] == "upstream_failed"
    assert states["publish"] == "upstream_failed"
    assert crm_writes(sandbox) == (0, 0)
    # The callback's summary: which stage, why, how many rows, what did not run, where to look.
    summary = run_summary(warehouse)
    assert (summary["status"], summary["failed_stage"]) == ("failed", "raw gate")
    assert [t["task_id"] for t in summary["failed_tasks"]] == ["check_raw"]
    text = summary["summary"]
    assert "FAILED at stage 'raw gate'" in text
    assert "loads.quarantine_share" in text
    assert "not run: dbt, score gate, sync, publish (the CRM was not written)" in text
    web = re.search(r"segment\.web_events ([\d,]+) read, [\d,]+ new, ([\d,]+) quarantined", text)
    assert web, text
    assert int(web.group(2).replace(",", "")) >= len(garbage)
    assert "task log: http" in text
    assert "Data Docs: file://" in text
    assert sandbox.token not in text
    with psycopg.connect(warehouse.conninfo()) as conn:
        gate = conn.execute(
            "select passed, failures::text from lead_scoring_ops.quality_gate_runs"
        ).fetchall()
        quarantined = conn.execute(
            "select count(*) from raw_analytics.quarantine where source_file like %s",
            ("%zz-poisoned.jsonl",),
        ).fetchone()
    assert len(gate) == 1
    assert gate[0][0] is False
    assert "loads.quarantine_share" in gate[0][1]
    assert quarantined == (len(garbage),)  # kept with their reason, not dropped

    # The failed run kept its turn. The operator fixes the export and runs the day again with
    # `dags test`, which replaces the failed run: its turn is released, not waited for.
    failed_run = dag_env["run_id"]
    assert lease_holder(warehouse) == failed_run
    (files[-1].parent / "zz-poisoned.jsonl").write_text("")  # the export, fixed
    states = run(dag_env, mark_success=r"check_raw|dbt_build\..*|check_scores|sync_crm|publish")
    assert states["take_turn"] == "success", states
    assert states.pop("__run__") == "success"
    assert dag_env["run_id"] != failed_run
    assert lease_holder(warehouse) == dag_env["run_id"]


def lease_holder(warehouse: WarehouseConfig) -> str | None:
    with psycopg.connect(warehouse.conninfo()) as conn:
        row = conn.execute("select dag_run_id from lead_scoring_ops.run_lease").fetchone()
    return None if row is None else row[0]
