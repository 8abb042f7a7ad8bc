"""One summary per DAG run, for the person on call: what the run loaded, scored, checked and
synced, or which stage failed, why, what did not run because of it, and where to look.

``publish`` (the DAG's last task) writes it for a run that went through; the tasks' failure
callback writes it for a stage that failed. Both land in ``lead_scoring_ops.pipeline_runs``
(one row per DAG run; a run cleared and re-run replaces its row) and in the task log. The
callback never raises: a summary that cannot reach the warehouse is still logged.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from lead_scoring.config import WarehouseConfig, gx_context_dir
from lead_scoring.warehouse import MARTS, OPS, connect

log = logging.getLogger(__name__)

DDL = f"""
create schema if not exists {OPS};
create table if not exists {OPS}.pipeline_runs (
    dag_run_id text primary key,
    dag_id text not null,
    logical_date timestamptz,
    as_of_date date,
    status text not null check (status in ('succeeded', 'failed')),
    failed_stage text,
    failed_tasks jsonb not null default '[]',
    details jsonb not null,
    summary text not null,
    data_docs text,
    recorded_at timestamptz not null default now()
);
"""

# The stages of the DAG in the order they run; the extract tasks run side by side.
STAGES = ("rules", "extract", "turn", "raw gate", "dbt", "score gate", "sync", "publish")
_STAGE_OF_TASK = {
    "check_rules": "rules",
    "extract_contacts": "extract",
    "extract_email_events": "extract",
    "load_web_events": "extract",
    "take_turn": "turn",
    "check_raw": "raw gate",
    "check_scores": "score gate",
    "sync_crm": "sync",
    "publish": "publish",
}


def stage_of(task_id: str) -> str:
    """The stage a task belongs to (every task of the ``dbt_build`` group is 'dbt')."""
    if task_id.startswith("dbt_build."):
        return "dbt"
    return _STAGE_OF_TASK.get(task_id, task_id)


def not_run_after(stage: str) -> list[str]:
    """The stages that wait for ``stage`` and so do not run when it fails."""
    if stage not in STAGES:
        return []
    return list(STAGES[STAGES.index(stage) + 1 :])


@dataclass
class RunFacts:
    """What the warehouse knows about one DAG run."""

    loads: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[str, dict[str, int]] = field(default_factory=dict)  # model -> band -> leads
    gates: dict[str, dict[str, Any]] = field(default_factory=dict)  # checkpoint -> verdict
    sync: dict[str, Any] | None = None

    def details(self) -> dict[str, Any]:
        return {"loads": self.loads, "scores": self.scores, "gates": self.gates, "sync": self.sync}

    def data_docs(self) -> str:
        for gate in ("score_gate", "raw_gate"):
            docs = self.gates.get(gate, {}).get("data_docs")
            if docs:
                return str(docs)
        site = gx_context_dir() / "uncommitted" / "data_docs" / "local_site" / "index.html"
        return site.as_uri()


def _exists(conn: psycopg.Connection[TupleRow], relation: str) -> bool:
    row = conn.execute("select to_regclass(%s) is not null", (relation,)).fetchone()
    return bool(row and row[0])


def collect(conn: psycopg.Connection[TupleRow], dag_run_id: str, as_of: date | None) -> RunFacts:
    """Loads, scores, gate verdicts and the sync of one run (each part only if its table
    exists: a first run can fail before any of them was created)."""
    facts = RunFacts()
    if _exists(conn, f"{OPS}.load_batches"):
        for source, status, read, inserted, quarantined in conn.execute(
            f"select source, status, rows_read, rows_inserted, rows_quarantined "
            f"from {OPS}.load_batches where run_id = %s order by started_at",
            (dag_run_id,),
        ):
            facts.loads.append(
                {
                    "source": source,
                    "status": status,
                    "rows_read": int(read),
                    "rows_inserted": int(inserted),
                    "rows_quarantined": int(quarantined),
                }
            )
    if as_of and _exists(conn, f"{MARTS}.fct_lead_score_summary"):
        for model, band, leads in conn.execute(
            f"select scoring_model_id, band, sum(lead_count) from {MARTS}.fct_lead_score_summary "
            "where as_of_date = %s group by 1, 2 order by 1, 2",
            (as_of,),
        ):
            facts.scores.setdefault(str(model), {})[str(band)] = int(leads)
    if _exists(conn, f"{OPS}.quality_gate_runs"):
        for checkpoint, passed, approved, failures, warnings, docs in conn.execute(
            f"select distinct on (checkpoint) checkpoint, passed, approved, "
            "jsonb_array_length(failures), jsonb_array_length(warnings), data_docs "
            f"from {OPS}.quality_gate_runs where run_id = %s "
            "order by checkpoint, gate_run_id desc",
            (dag_run_id,),
        ):
            facts.gates[str(checkpoint)] = {
                "passed": bool(passed),
                "approved": bool(approved),
                "failures": int(failures),
                "warnings": int(warnings),
                "data_docs": docs,
            }
    if _exists(conn, f"{OPS}.crm_sync_runs"):
        cursor = conn.execute(
            f"select crm, status, dry_run, changed, sent, accepted, not_found, failed, "
            f"requests, duration_seconds, error from {OPS}.crm_sync_runs "
            "where dag_run_id = %s order by started_at desc limit 1",
            (dag_run_id,),
        )
        names = [column.name for column in cursor.description or []]
        row = cursor.fetchone()
        if row:
            facts.sync = {
                name: (float(value) if name == "duration_seconds" and value is not None else value)
                for name, value in zip(names, row, strict=True)
            }
    return facts


def _lines(facts: RunFacts) -> list[str]:
    lines = []
    if facts.loads:
        parts = [
            f"{load['source']} {load['rows_read']:,} read, {load['rows_inserted']:,} new, "
            f"{load['rows_quarantined']:,} quarantined"
            + ("" if load["status"] == "committed" else f" ({load['status']})")
            for load in facts.loads
        ]
        lines.append("loaded: " + "; ".join(parts))
    else:
        lines.append("loaded: nothing recorded for this run")
    for model, bands in facts.scores.items():
        leads = sum(bands.values())
        split = ", ".join(f"{bands.get(b, 0):,} {b}" for b in ("hot", "warm", "cold"))
        lines.append(f"scores ({model}): {leads:,} leads ({split})")
    for checkpoint, gate in sorted(facts.gates.items()):
        verdict = "passed" if gate["passed"] else "FAILED"
        if gate["approved"]:
            verdict += " with approved drift"
        lines.append(
            f"{checkpoint}: {verdict} ({gate['failures']} failures, {gate['warnings']} warnings)"
        )
    if facts.sync and facts.sync["status"] == "skipped":
        lines.append(
            f"CRM sync ({facts.sync['crm']}): skipped, the CRM holds scores of a later day "
            "(it never moves back in time)"
        )
    elif facts.sync:
        s = facts.sync
        mode = "dry run, would send" if s["dry_run"] else "sent"
        lines.append(
            f"CRM sync ({s['crm']}, {s['status']}): {s['changed']:,} changed, {mode} "
            f"{s['sent']:,}, {s['accepted']:,} accepted, {s['not_found']:,} not found, "
            f"{s['failed']:,} failed, {s['requests']:,} requests"
        )
    lines.append(f"Data Docs: {facts.data_docs()}")
    return lines


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _write(
    conn: psycopg.Connection[TupleRow],
    *,
    dag_run_id: str,
    dag_id: str,
    logical_date: datetime | None,
    as_of: date | None,
    status: str,
    failed_stage: str | None,
    failed_tasks: list[dict[str, Any]],
    details: dict[str, Any],
    summary: str,
    data_docs: str,
) -> None:
    conn.execute(
        f"""
        insert into {OPS}.pipeline_runs (dag_run_id, dag_id, logical_date, as_of_date, status,
            failed_stage, failed_tasks, details, summary, data_docs, recorded_at)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
        on conflict (dag_run_id) do update set
            logical_date = excluded.logical_date, as_of_date = excluded.as_of_date,
            status = excluded.status, failed_stage = excluded.failed_stage,
            failed_tasks = excluded.failed_tasks, details = excluded.details,
            summary = excluded.summary, data_docs = excluded.data_docs,
            recorded_at = excluded.recorded_at
        """,
        (
            dag_run_id,
            dag_id,
            logical_date,
            as_of,
            status,
            failed_stage,
            json.dumps(failed_tasks),
            json.dumps(details, default=str),
            summary,
            data_docs,
        ),
    )


def publish(
    warehouse: WarehouseConfig,
    *,
    dag_run_id: str,
    dag_id: str,
    logical_date: datetime | None,
    as_of: date,
) -> dict[str, Any]:
    """The summary of a run that went through: written to ``pipeline_runs`` and the log."""
    with connect(warehouse) as conn:
        conn.execute(DDL)
        facts = collect(conn, dag_run_id, as_of)
        text = "\n  ".join(
            [f"{dag_id} run {dag_run_id} succeeded (scores as of {as_of})", *_lines(facts)]
        )
        details = facts.details()
        _write(
            conn,
            dag_run_id=dag_run_id,
            dag_id=dag_id,
            logical_date=logical_date,
            as_of=as_of,
            status="succeeded",
            failed_stage=None,
            failed_tasks=[],
            details=details,
            summary=text,
            data_docs=facts.data_docs(),
        )
    log.info("%s", text)
    return {"status": "succeeded", "summary": text, "data_docs": facts.data_docs(), **details}


@dataclass(frozen=True)
class Failure:
    """One failed task of a run, as the failure callback sees it."""

    dag_id: str
    dag_run_id: str
    task_id: str
    error: str
    log_url: str | None = None
    logical_date: datetime | None = None
    as_of: date | None = None


def record_failure(
    warehouse: WarehouseConfig | None, failure: Failure, *, secrets: list[str] | None = None
) -> str:
    """Write the summary of a failed stage (merged with other failed tasks of the same run)
    and return it. Never raises: without a warehouse the summary says why and is still
    returned for the log."""
    secrets = secrets or []
    stage = stage_of(failure.task_id)
    task: dict[str, Any] = {
        "task_id": failure.task_id,
        "stage": stage,
        "error": _redact(failure.error, secrets)[:2000],
        "log_url": failure.log_url,
    }
    facts = RunFacts()
    failed = [task]
    problem = None
    try:
        if warehouse is None:
            raise RuntimeError("no warehouse connection")
        with connect(warehouse) as conn:
            conn.execute(DDL)
            conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (failure.dag_run_id,))
            row = conn.execute(
                f"select status, failed_tasks from {OPS}.pipeline_runs where dag_run_id = %s",
                (failure.dag_run_id,),
            ).fetchone()
            if row and row[0] == "failed":
                earlier = [t for t in row[1] if t.get("task_id") != failure.task_id]
                failed = [*earlier, task]
            facts = collect(conn, failure.dag_run_id, failure.as_of)
            text = _failure_text(failure, failed, facts)
            first = min((t["stage"] for t in failed), key=_stage_rank)
            _write(
                conn,
                dag_run_id=failure.dag_run_id,
                dag_id=failure.dag_id,
                logical_date=failure.logical_date,
                as_of=failure.as_of,
                status="failed",
                failed_stage=first,
                failed_tasks=failed,
                details=facts.details(),
                summary=text,
                data_docs=facts.data_docs(),
            )
    except Exception as exc:  # the callback must not hide the task's own error
        problem = f"the summary could not be written to the warehouse: {type(exc).__name__}: {exc}"
        text = _failure_text(failure, failed, facts)
    text = _redact(text + (f"\n  ({problem})" if problem else ""), secrets)
    log.error("%s", text)
    return text


def _stage_rank(stage: str) -> int:
    return STAGES.index(stage) if stage in STAGES else len(STAGES)


def _failure_text(failure: Failure, failed: list[dict[str, Any]], facts: RunFacts) -> str:
    first = min((t["stage"] for t in failed), key=_stage_rank)
    skipped = not_run_after(first)
    crm = (
        "the CRM was not written"
        if _stage_rank(first) < _stage_rank("sync")
        else "the sync recorded each batch the CRM accepted; re-running it sends only the rest"
        if first == "sync"
        else "the CRM sync had finished"
    )
    lines = [f"{failure.dag_id} run {failure.dag_run_id} FAILED at stage '{first}'"]
    for task in failed:
        lines.append(f"task {task['task_id']} ({task['stage']}): {task['error']}")
        if task.get("log_url"):
            lines.append(f"task log: {task['log_url']}")
    lines.append(f"not run: {', '.join(skipped) or 'nothing'} ({crm})")
    lines.extend(_lines(facts))
    return "\n  ".join(lines)
