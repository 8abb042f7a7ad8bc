"""``lead-scoring demo``: the whole job once, on the embedded default, then what it produced.

Starts the embedded PostgreSQL and the CRM sandbox (its portal kept in ``.local/sandbox``),
writes the synthetic dataset (the same one on every run: the seed, size and end date are kept in
the dataset's manifest), runs the ``lead_scoring`` DAG with ``airflow dags test``, and prints the
top leads, what the run changed and where the outputs are. Whatever happens, the servers it
started are stopped before it returns.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from lead_scoring.config import CrmConfig, WarehouseConfig, gx_context_dir, local_dir
from lead_scoring.runtime.dbt_tools import parse_project
from lead_scoring.runtime.embedded import EmbeddedPostgres, EmbeddedPostgresError
from lead_scoring.runtime.environment import (
    child_environment,
    job_environment,
    query_metadata,
)
from lead_scoring.sandbox.admin import SandboxAdmin, write_requests
from lead_scoring.sandbox.server import Sandbox
from lead_scoring.synth import SynthConfig, write_dataset
from lead_scoring.synth.generator import GENERATOR_VERSION
from lead_scoring.synth.writer import SynthSummary
from lead_scoring.warehouse import MARTS, OPS, RAW_ANALYTICS, RAW_CRM, connect

DAG_ID = "lead_scoring"


class DemoError(RuntimeError):
    """A setup step failed; the message is one line with the cause and the fix."""


@dataclass(frozen=True)
class DemoOptions:
    contacts: int = 1000
    seed: int = 42
    port: int = 8765
    as_of: date | None = None


# Bumped when the marts change shape: the demo's persistent warehouse is then rebuilt instead
# of failing on an incremental model whose columns moved (a production warehouse runs the DAG
# once with full_refresh=true instead; see the README).
WAREHOUSE_LAYOUT = 2

# The scoring model whose top leads the demo lists (the shipped ruleset's core model).
DEMO_TOP_MODEL = "default"


def say(message: str = "") -> None:
    print(message, flush=True)


def step(number: int, total: int, label: str, detail: str) -> None:
    say(f"  {number}/{total} {label:<20} {detail}")


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the server binds: only a live listener counts, not the last run's TIME_WAIT.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise DemoError(
                f"port {port} on {host} is already in use (another sandbox or program?): "
                f"stop it, or pass --port {port + 1}"
            ) from None


def previous_dataset_end(dataset_dir: Path, options: DemoOptions) -> date | None:
    """The end date of the dataset an earlier demo wrote, if it is the one asked for now (same
    generator, seed and size): reusing it makes a second demo score exactly the same data."""
    manifest = dataset_dir / "manifest.json"
    if not manifest.exists():
        return None
    document = json.loads(manifest.read_text())
    config = document.get("config", {})
    same = (
        document.get("generator_version") == GENERATOR_VERSION
        and config.get("seed") == options.seed
        and config.get("contacts") == options.contacts
    )
    return date.fromisoformat(config["end"]) if same else None


def reset_demo_state(local: Path) -> None:
    """Forget the demo's portal, warehouse and dataset (all under .local, all regenerated)."""
    for folder in (local / "pgdata", local / "sandbox", local / "demo" / "dataset"):
        shutil.rmtree(folder, ignore_errors=True)


def scores_snapshot(warehouse: WarehouseConfig) -> dict[tuple[str, str], tuple[int, str]]:
    """The current scores in the warehouse (empty before the first run)."""
    with connect(warehouse) as conn:
        exists = conn.execute("select to_regclass(%s)", (f"{MARTS}.fct_lead_scores",)).fetchone()
        if not exists or exists[0] is None:
            return {}
        rows = conn.execute(
            f"select lead_id, scoring_model_id, total_score, band from {MARTS}.fct_lead_scores"
        ).fetchall()
    return {(str(r[0]), str(r[1])): (int(r[2]), str(r[3])) for r in rows}


def run_dag(env: dict[str, str], as_of: date, log_path: Path) -> int:
    """``airflow dags test`` in a subprocess: output to ``log_path``, task progress on screen."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    migrate = subprocess.run(
        [airflow, "db", "migrate"], env=env, capture_output=True, text=True, check=False
    )
    if migrate.returncode != 0:
        raise DemoError(f"airflow db migrate failed: {migrate.stderr.strip().splitlines()[-1:]}")
    started = re.compile(r"\[DAG TEST\] starting task_id=(\S+)")
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [airflow, "dags", "test", DAG_ID, as_of.isoformat()],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        for line in process.stdout:
            log_file.write(line)
            match = started.search(line)
            if match:
                say(f"        running {match.group(1)}")
        return process.wait()


def task_states(metadata: str) -> dict[str, str]:
    """Task states of the latest run of the DAG, from Airflow's metadata database."""
    rows = query_metadata(
        metadata,
        "select task_id, coalesce(state, 'none') from task_instance where dag_id = :dag and "
        "run_id = (select run_id from dag_run where dag_id = :dag order by id desc limit 1)",
        dag=DAG_ID,
    )
    return {str(task): str(state) for task, state in rows}


def report(
    warehouse: WarehouseConfig,
    as_of: date,
    before: dict[tuple[str, str], tuple[int, str]],
    started_at: datetime,
    sandbox_writes: tuple[int, int],
) -> None:
    with connect(warehouse) as conn:
        top = conn.execute(
            f"""
            select lead_id, email, total_score, band, fit_grade, coalesce(top_reasons, '-')
            from {MARTS}.fct_lead_scores where scoring_model_id = %s
            order by total_score desc, raw_score desc, lead_id limit 10
            """,
            (DEMO_TOP_MODEL,),
        ).fetchall()
        bands: dict[tuple[str, str], int] = {
            (str(model), str(band)): int(count)
            for model, band, count in conn.execute(
                f"select scoring_model_id, band, sum(lead_count) "
                f"from {MARTS}.fct_lead_score_summary where as_of_date = %s group by 1, 2",
                (as_of,),
            ).fetchall()
        }
        after = scores_snapshot(warehouse)
        raw = {
            "contacts": conn.execute(f"select count(*) from {RAW_CRM}.contacts").fetchone(),
            "email events": conn.execute(f"select count(*) from {RAW_CRM}.email_events").fetchone(),
            "web events": conn.execute(
                f"select count(*) from {RAW_ANALYTICS}.web_events"
            ).fetchone(),
        }
        loads = conn.execute(
            f"""
            select source, sum(rows_inserted), sum(rows_quarantined), sum(rows_replaced)
            from {OPS}.load_batches where started_at >= %s and status = 'committed' group by source
            """,
            (started_at,),
        ).fetchall()
        reasons = conn.execute(
            f"""
            select q.reason, count(*) from (
                select reason, batch_id from {RAW_CRM}.quarantine
                union all select reason, batch_id from {RAW_ANALYTICS}.quarantine
            ) as q join {OPS}.load_batches as b using (batch_id)
            where b.started_at >= %s group by 1 order by 2 desc, 1
            """,
            (started_at,),
        ).fetchall()
        sync = conn.execute(
            f"""
            select scores_considered, changed, sent, accepted, not_found, failed, requests
            from {OPS}.crm_sync_runs where started_at >= %s order by started_at desc limit 1
            """,
            (started_at,),
        ).fetchone()
    models = {model for _, model in after}
    say()
    say(f"Top 10 leads of the {DEMO_TOP_MODEL!r} scoring model (as of {as_of})")
    say(f"  {'lead':>6}  {'email':<40} {'score':>5}  {'band':<5} fit  top reasons")
    for lead_id, email, score, band, grade, reasons_text in top:
        say(
            f"  {lead_id!s:>6}  {str(email or '-')[:40]:<40} {score!s:>5}  {band!s:<5} "
            f"{grade!s:<3}  {reasons_text}"
        )
    say()
    say("This run")
    new_rows = {str(src): (int(ins or 0), int(q or 0), int(rep or 0)) for src, ins, q, rep in loads}
    labels = {
        "contacts": "hubspot.contacts",
        "email events": "hubspot.email_events",
        "web events": "segment.web_events",
    }
    parts = []
    for label, count in raw.items():
        inserted, quarantined, replaced = new_rows.get(labels[label], (0, 0, 0))
        total_rows = int(count[0]) if count else 0
        reloaded = f", {replaced:,} re-loaded for this interval" if replaced else ""
        parts.append(
            f"{label} {total_rows:,} (+{inserted - replaced:,} new{reloaded}, "
            f"{quarantined} quarantined)"
        )
    say("  raw rows    " + "; ".join(parts))
    if reasons:
        say(
            "  quarantine  "
            + ", ".join(f"{n} {reason}" for reason, n in reasons)
            + f" (reason and payload in {RAW_CRM}.quarantine / {RAW_ANALYTICS}.quarantine)"
        )
    leads = len(after) // max(1, len(models))
    say(f"  scores      {len(after):,} rows = {leads:,} leads x {len(models)} model(s)")
    for model in sorted(models):
        band_text = ", ".join(f"{bands.get((model, b), 0):,} {b}" for b in ("hot", "warm", "cold"))
        say(f"              {model}: {band_text}")
    if before:
        same = sum(1 for key, value in after.items() if before.get(key) == value)
        say(f"              same as the previous run for this date: {same:,} of {len(after):,}")
    if sync:
        considered, changed, sent, accepted, not_found, failed, requests = sync
        say(
            f"  CRM sync    {changed:,} of {considered:,} scores changed -> "
            f"{sent:,} contacts sent, "
            f"{accepted:,} accepted, {not_found} not found, {failed} failed, {requests} API calls"
        )
    calls, records = sandbox_writes
    say(
        f"              the sandbox saw {calls} batch-update call(s) writing {records:,} contact(s)"
    )
    if before and calls == 0:
        say("              zero CRM writes: no lead's score changed since the last run")


@dataclass(frozen=True)
class LocalStack:
    """The embedded default, running: warehouse, CRM sandbox, dataset, and the environment the
    DAG needs to run against them."""

    warehouse: WarehouseConfig
    data_dir: Path
    sandbox: Sandbox
    admin: SandboxAdmin
    summary: SynthSummary
    as_of: date
    airflow_home: Path
    metadata: str
    env: dict[str, str]


def start_local_stack(stack: ExitStack, options: DemoOptions, total: int) -> LocalStack:
    """Steps 1-5 of the demo (and of ``lead-scoring airflow``): start the embedded PostgreSQL
    and the sandbox (stopped when ``stack`` closes), write the dataset, parse the dbt project,
    and build the job's environment. The demo's state persists in ``.local``."""
    local = local_dir()
    demo_dir = local / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    dataset_dir = demo_dir / "dataset"
    airflow_home = local / "airflow"
    airflow_home.mkdir(parents=True, exist_ok=True)

    check_port_free("127.0.0.1", options.port)
    end = previous_dataset_end(dataset_dir, options)
    layout_file = local / "demo" / "warehouse_layout"
    old_layout = layout_file.read_text().strip() if layout_file.exists() else None
    if end is None and (dataset_dir / "manifest.json").exists():
        say("  the dataset asked for differs from the last demo's: starting from a fresh")
        say("  portal and warehouse (the demo's own state in .local, nothing else)")
        reset_demo_state(local)
    elif old_layout != str(WAREHOUSE_LAYOUT) and (local / "pgdata").exists():
        say("  the score marts changed shape since the last demo: starting from a fresh")
        say("  portal and warehouse (the demo's own state in .local, nothing else)")
        reset_demo_state(local)
        end = None
    layout_file.parent.mkdir(parents=True, exist_ok=True)
    layout_file.write_text(f"{WAREHOUSE_LAYOUT}\n")
    end = end or options.as_of or datetime.now(UTC).date()
    server = EmbeddedPostgres(local / "pgdata")
    try:
        warehouse = server.start()
    except EmbeddedPostgresError as exc:
        raise DemoError(str(exc)) from None
    stack.callback(server.stop)
    metadata = server.airflow_metadata()
    step(1, total, "warehouse", f"embedded PostgreSQL, data in {server.data_dir} (socket)")

    # A fresh token per run: the portal persists, the credential never does.
    token = secrets.token_urlsafe(24)
    (local / "sandbox").mkdir(parents=True, exist_ok=True)
    try:
        portal = local / "sandbox" / "portal.db"
        sandbox = Sandbox(port=options.port, token=token, db_path=portal)
    except OSError as exc:
        raise DemoError(
            f"the CRM sandbox cannot listen on 127.0.0.1:{options.port} ({exc.strerror}): "
            f"pass --port {options.port + 1}"
        ) from None
    sandbox.start()
    stack.callback(sandbox.stop)
    admin = stack.enter_context(SandboxAdmin(sandbox.url, token))
    if not admin.ping():
        raise DemoError(f"the CRM sandbox did not answer on {sandbox.url}")
    step(2, total, "CRM sandbox", f"{sandbox.url} (portal {sandbox.portal.path})")

    config = SynthConfig(contacts=options.contacts, seed=options.seed, end=end)
    interactive = sys.stdout.isatty()

    def progress(done: int, of: int) -> None:
        if interactive:
            print(
                f"\r  3/{total} {'synthetic data':<20} {done:,}/{of:,} contacts",
                end="",
                flush=True,
            )

    summary = write_dataset(
        config, crm_url=sandbox.url, token=token, out_dir=dataset_dir, progress=progress
    )
    if interactive:
        print("\r", end="")
    step(
        3,
        total,
        "synthetic data",
        f"{summary.contacts:,} contacts ({summary.contacts_created:,} new in the portal), "
        f"{summary.web_events:,} web events, {summary.email_events:,} email events "
        f"(seed {options.seed}, up to {end})",
    )
    parse_project()
    step(4, total, "dbt manifest", "parsed dbt_project (Cosmos renders the DAG from it)")
    env = child_environment(
        job_environment(
            airflow_home,
            metadata=metadata,
            warehouse=warehouse,
            crm=CrmConfig(base_url=sandbox.url, token=token),
            events_path=Path(summary.events_dir),
        )
    )
    step(5, total, "Airflow", f"metadata in the same PostgreSQL, home {airflow_home}")
    return LocalStack(
        warehouse=warehouse,
        data_dir=server.data_dir,
        sandbox=sandbox,
        admin=admin,
        summary=summary,
        as_of=options.as_of or end,
        airflow_home=airflow_home,
        metadata=metadata,
        env=env,
    )


def run_demo_backtest(warehouse: WarehouseConfig, total: int) -> Path:
    """Step 7: backtest the production ruleset on the demo's own history (a few weekly cutoffs,
    the latest held out) beside its learned draft, and write the HTML report."""
    from lead_scoring.backtest.cli import headline
    from lead_scoring.backtest.runner import BacktestOptions, run_backtest
    from lead_scoring.backtest.scoring import BacktestError, Ruleset

    out_dir = local_dir() / "backtest" / "demo"
    step(7, total, "backtest", f"production vs learned ruleset on past cutoffs -> {out_dir}")
    options = BacktestOptions(
        rulesets=[Ruleset("production")],
        max_cutoffs=5,
        capacity_per_week=50,
        out_dir=out_dir,
        title="Backtest of the demo warehouse",
    )
    try:
        result = run_backtest(warehouse, options, say=say)
    except BacktestError as exc:
        raise DemoError(f"the backtest failed: {exc}") from None
    for line in headline(result.summary):
        say(f"  {line}")
    return result.report


def run_demo(options: DemoOptions) -> int:
    """Run the demo; returns the process exit code (non-zero if any task failed)."""
    total = 7
    log_path = local_dir() / "demo" / "last_run.log"
    say("Lead scoring demo (embedded PostgreSQL + CRM sandbox + Airflow `dags test`)")
    begun = time.monotonic()

    with ExitStack() as stack:
        local = start_local_stack(stack, options, total)
        warehouse, as_of, airflow_home = local.warehouse, local.as_of, local.airflow_home
        before = scores_snapshot(warehouse)
        writes_before = write_requests(local.admin.stats())
        started_at = datetime.now(UTC)
        step(6, total, "DAG lead_scoring", f"airflow dags test {DAG_ID} {as_of} (log: {log_path})")
        code = run_dag(local.env, as_of, log_path)
        states = task_states(local.metadata)
        failed = sorted(t for t, s in states.items() if s not in ("success", "skipped"))
        elapsed = time.monotonic() - begun
        if code != 0 or failed or not states:
            say()
            names = ", ".join(failed) or "unknown"
            say(f"FAILED after {elapsed:.0f}s: task(s) not successful: {names}")
            say(f"  see {log_path} and the task logs in {airflow_home / 'logs'}")
            return 1
        say(f"  all {len(states)} tasks succeeded in {elapsed:.0f}s")
        writes_after = write_requests(local.admin.stats())
        report(
            warehouse,
            as_of,
            before,
            started_at,
            (writes_after[0] - writes_before[0], writes_after[1] - writes_before[1]),
        )
        backtest_report = run_demo_backtest(warehouse, total)
    docs = gx_context_dir() / "uncommitted" / "data_docs" / "local_site" / "index.html"
    say()
    say("Outputs")
    say(f"  scores      table {MARTS}.fct_lead_scores in the embedded warehouse ({local.data_dir})")
    say(f"  trend       table {MARTS}.fct_lead_score_summary (leads, MQLs, SQLs per day and band)")
    say("  rules       dbt_project/seeds/*.csv (ruleset version stamped on every score row)")
    say(f"  data docs   file://{docs}")
    say(f"  task logs   {airflow_home / 'logs'}")
    say(f"  run log     {log_path}")
    say(f"  run summary {OPS}.pipeline_runs (what each run loaded, scored, checked, synced)")
    say(f"  backtest    file://{backtest_report} (make backtest ARGS='--dataset uci' for more)")
    dataset = local_dir() / "demo" / "dataset"
    say(f"  dataset     {dataset} (truth.csv holds each contact's hidden propensity)")
    return 0
