"""``lead-scoring`` (also ``python -m lead_scoring``): what a person runs by hand.

    lead-scoring demo                 the whole job once on the embedded default
    lead-scoring airflow              the Airflow UI (airflow standalone) on the embedded default
    lead-scoring sandbox --port 8765  serve the CRM sandbox
    lead-scoring synth --contacts N   write a synthetic dataset into a running sandbox
    lead-scoring dbt-parse            write dbt_project/target/manifest.json for Cosmos
    lead-scoring dbt-lint [--fix]     sqlfluff on the dbt models
    lead-scoring dbt-docs             dbt's docs site as one HTML file
    lead-scoring explain --lead ID    the ledger lines behind a lead's score, on any date
    lead-scoring quality-init         rewrite the Great Expectations file context
    lead-scoring grant-bi-reader      the read-only role BI tools connect as

Errors are one line on stderr with a non-zero exit code; tokens are never printed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lead_scoring import __version__

if TYPE_CHECKING:
    from lead_scoring.config import WarehouseConfig

log = logging.getLogger("lead_scoring")


def _share(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share like 0.2, got {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {number}")
    return number


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _port(value: str) -> int:
    number = _positive(value)
    if number > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535, got {number}")
    return number


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date like 2024-06-01, got {value!r}"
        ) from None


def _local_stack_arguments(command: argparse.ArgumentParser) -> None:
    """The embedded default's options, shared by ``demo`` and ``airflow``."""
    command.add_argument(
        "--contacts", type=_positive, default=1000, help="synthetic contacts (default 1000)"
    )
    command.add_argument("--seed", type=int, default=42, help="synthetic data seed (default 42)")
    command.add_argument(
        "--port", type=_port, default=8765, help="sandbox port on 127.0.0.1 (default 8765)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lead-scoring",
        description="Versioned, explainable lead scoring in your warehouse.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    demo = commands.add_parser(
        "demo",
        help="run the lead_scoring DAG end to end on the embedded default",
        description="Start the embedded PostgreSQL and the CRM sandbox, write the synthetic "
        "dataset, run the DAG with `airflow dags test`, print the top leads, stop the servers.",
    )
    _local_stack_arguments(demo)
    demo.add_argument(
        "--as-of", type=_date, help="score as of this date (default: the dataset's end)"
    )

    ui = commands.add_parser(
        "airflow",
        help="serve the Airflow UI (airflow standalone) on the embedded default",
        description="Start the embedded PostgreSQL, the CRM sandbox and the synthetic dataset "
        "as the demo does, then `airflow standalone` on 127.0.0.1 (LocalExecutor, two task "
        "slots); Ctrl-C stops everything it started.",
    )
    _local_stack_arguments(ui)
    ui.add_argument(
        "--ui-port", type=_port, default=8080, help="Airflow UI port on 127.0.0.1 (default 8080)"
    )

    commands.add_parser(
        "dbt-docs",
        help="write dbt's docs site as one HTML file (.local/dbt-docs/static_index.html)",
        description="dbt docs generate --static against the warehouse AIRFLOW_CONN_WAREHOUSE "
        "names, or, without it, the demo's embedded warehouse (started and stopped here).",
    )

    explain = commands.add_parser(
        "explain",
        help="the ledger lines behind a lead's score on any date",
        description="Recompute the ledger lines of a lead as of a date from the warehouse "
        "AIRFLOW_CONN_WAREHOUSE names (or the demo's embedded one) and compare their sum with "
        "the score stored for that date. The same lines come from the SQL function "
        "lead_scoring_marts.explain_lead_score(lead, as_of, model) and from "
        "`dbt run-operation explain_lead`.",
    )
    explain.add_argument("--lead", required=True, help="the lead (HubSpot contact id)")
    explain.add_argument("--model", help="one scoring model (default: every one)")
    explain.add_argument("--as-of", type=_date, help="the date (default: today, UTC)")

    bi = commands.add_parser(
        "grant-bi-reader",
        help="create the read-only bi_reader role (password from BI_READER_PASSWORD)",
        description="Create the read-only role BI tools connect as (if missing) and grant it "
        "select on the score marts, now and after dbt rebuilds them. Connects through the "
        "warehouse connection (AIRFLOW_CONN_WAREHOUSE); the password is read from "
        "BI_READER_PASSWORD, never from the command line.",
    )
    bi.add_argument("--role", default="bi_reader", help="role name (default bi_reader)")

    sandbox = commands.add_parser(
        "sandbox",
        help="serve the CRM sandbox (HubSpot CRM v3 wire contract)",
        description="Serve the CRM sandbox until interrupted. The token comes from --token or "
        "LEAD_SCORING_SANDBOX_TOKEN; the portal persists in --db.",
    )
    sandbox.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    sandbox.add_argument("--port", type=_port, default=8765, help="port (default 8765)")
    sandbox.add_argument(
        "--token", help="bearer token clients must send (default: $LEAD_SCORING_SANDBOX_TOKEN)"
    )
    sandbox.add_argument(
        "--db", type=Path, help="SQLite file of the portal (default .local/sandbox/portal.db)"
    )
    sandbox.add_argument(
        "--rate-limit",
        type=_positive,
        default=190,
        help="requests per 10 s per token (default 190)",
    )
    sandbox.add_argument(
        "--search-rate", type=_positive, default=5, help="search requests per second (default 5)"
    )
    faults = sandbox.add_argument_group(
        "fault injection", "for reliability tests; adjustable at runtime: POST /_sandbox/faults"
    )
    faults.add_argument(
        "--fault-429", type=_share, default=0.0, help="share of calls answered 429 (0..1)"
    )
    faults.add_argument(
        "--fault-5xx", type=_share, default=0.0, help="share of calls answered 500/502/503 (0..1)"
    )
    faults.add_argument(
        "--fault-drop",
        type=_share,
        default=0.0,
        help="share of calls whose connection is dropped without an answer (0..1)",
    )
    faults.add_argument(
        "--latency-ms", type=int, default=0, help="delay added to every API call (default 0)"
    )

    synth = commands.add_parser(
        "synth",
        help="write a synthetic dataset into a running sandbox and an events folder",
        description="Generate contacts, email events and Segment web events. Contacts and email "
        "events go into the sandbox at --crm-url; web events to <out>/events/*.jsonl.",
    )
    synth.add_argument(
        "--contacts", type=_positive, default=1000, help="contacts to generate (default 1000)"
    )
    synth.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    synth.add_argument("--end", type=_date, help="last day of the data (default today, UTC)")
    synth.add_argument("--days", type=_positive, default=180, help="days of history (default 180)")
    synth.add_argument(
        "--out", type=Path, default=None, help="dataset folder (default .local/synth)"
    )
    synth.add_argument(
        "--dirty-share",
        type=_share,
        default=0.02,
        help="share of contacts carrying one dirty record (default 0.02)",
    )
    synth.add_argument("--crm-url", default="http://127.0.0.1:8765", help="sandbox base URL")
    synth.add_argument("--token", help="sandbox token (default: $LEAD_SCORING_SANDBOX_TOKEN)")

    from lead_scoring.backtest import cli as backtest_cli

    backtest_cli.add_parser(commands, _date, _positive, _share)

    rules = commands.add_parser("rules", help="work with a ruleset (a folder of rule CSVs)")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True, metavar="command")
    check = rules_commands.add_parser(
        "validate",
        help="check a ruleset folder before it scores anything (exit 1 naming each problem)",
        description="Checks every rule file of the folder (the production seeds fill in the "
        "files it lacks) against the dbt project's column types and seed tests: each problem "
        "is named by file, line, rule id, column and value. For a pull-request check.",
    )
    check.add_argument(
        "folder",
        nargs="?",
        type=Path,
        help="the ruleset folder (default: the production seeds, dbt_project/seeds)",
    )
    commands.add_parser(
        "check-secrets",
        help="refuse placeholder or weak secrets in the environment (the compose stack's "
        "airflow-init runs it first); names the variables, never their values",
    )
    commands.add_parser("dbt-parse", help="parse the dbt project into target/manifest.json")
    lint = commands.add_parser("dbt-lint", help="sqlfluff (dbt templater) on the dbt models")
    lint.add_argument("--fix", action="store_true", help="apply sqlfluff's fixes")
    commands.add_parser(
        "quality-init",
        help="rewrite the Great Expectations file context from its definitions",
        description="Needs AIRFLOW_CONN_WAREHOUSE pointing at a warehouse where the scores "
        "were built (GX checks the tables exist when it writes the assets).",
    )
    return parser


def _token(given: str | None) -> str:
    token = given or os.environ.get("LEAD_SCORING_SANDBOX_TOKEN")
    if not token:
        raise SystemExit("error: no token: pass --token or set LEAD_SCORING_SANDBOX_TOKEN")
    return token


def cmd_demo(args: argparse.Namespace) -> int:
    from lead_scoring.runtime.demo import DemoError, DemoOptions, run_demo

    try:
        return run_demo(
            DemoOptions(contacts=args.contacts, seed=args.seed, port=args.port, as_of=args.as_of)
        )
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def cmd_airflow(args: argparse.Namespace) -> int:
    from lead_scoring.runtime.demo import DemoError
    from lead_scoring.runtime.standalone import StandaloneError, UiOptions, run_airflow_ui

    try:
        return run_airflow_ui(
            UiOptions(contacts=args.contacts, seed=args.seed, port=args.port, ui_port=args.ui_port)
        )
    except (DemoError, StandaloneError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _warehouse(stack: ExitStack) -> WarehouseConfig:
    """The warehouse AIRFLOW_CONN_WAREHOUSE names, else the demo's embedded one (started here
    and stopped with ``stack``)."""
    from lead_scoring.config import ConfigError, local_dir, warehouse_config
    from lead_scoring.runtime.embedded import EmbeddedPostgres

    if os.environ.get("AIRFLOW_CONN_WAREHOUSE"):
        return warehouse_config()
    if not (local_dir() / "pgdata").exists():
        raise ConfigError("no warehouse: set AIRFLOW_CONN_WAREHOUSE, or run `make demo` first")
    embedded: WarehouseConfig = stack.enter_context(EmbeddedPostgres(local_dir() / "pgdata"))
    return embedded


def cmd_dbt_docs(_: argparse.Namespace) -> int:
    from lead_scoring.config import local_dir
    from lead_scoring.runtime.dbt_tools import generate_docs

    with ExitStack() as stack:
        page = generate_docs(_warehouse(stack), local_dir() / "dbt-docs")
    print(f"dbt docs: file://{page}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from lead_scoring.explain import explain, render

    with ExitStack() as stack:
        explanation = explain(_warehouse(stack), args.lead, args.as_of, args.model)
    print("\n".join(render(explanation)))
    return 0 if all(m.agrees for m in explanation.models) else 3


def cmd_grant_bi_reader(args: argparse.Namespace) -> int:
    from lead_scoring.bi_access import ensure_bi_reader
    from lead_scoring.config import warehouse_config

    warehouse = warehouse_config()
    created = ensure_bi_reader(
        warehouse, password=os.environ.get("BI_READER_PASSWORD") or None, role=args.role
    )
    state = "created" if created else "exists"
    print(f"role {args.role} {state}; it may read the score marts of {warehouse.dbname} only")
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from lead_scoring.config import local_dir
    from lead_scoring.sandbox.server import Faults, Sandbox

    token = _token(args.token)
    db_path = args.db or local_dir() / "sandbox" / "portal.db"
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    try:
        faults = Faults(
            rate_429=args.fault_429,
            rate_5xx=args.fault_5xx,
            drop_rate=args.fault_drop,
            latency_ms=args.latency_ms,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        server = Sandbox(
            host=args.host,
            port=args.port,
            token=token,
            db_path=db_path,
            rate_limit=args.rate_limit,
            search_per_second=args.search_rate,
            faults=faults,
        )
    except OSError as exc:
        print(
            f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}; pick another --port",
            file=sys.stderr,
        )
        return 1
    print(f"CRM sandbox on {server.url} (portal {db_path}); Ctrl-C to stop", flush=True)
    # `docker stop` and service managers send SIGTERM: stop as cleanly as on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
        server.portal.close()
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    import httpx

    from lead_scoring.config import local_dir
    from lead_scoring.synth import SynthConfig, write_dataset

    config = SynthConfig(
        contacts=args.contacts,
        seed=args.seed,
        end=args.end or datetime.now(UTC).date(),
        days=args.days,
        dirty_share=args.dirty_share,
    )
    out = args.out or local_dir() / "synth"

    def progress(done: int, total: int) -> None:
        print(f"\rcontacts {done:,}/{total:,}", end="", file=sys.stderr, flush=True)

    try:
        summary = write_dataset(
            config, crm_url=args.crm_url, token=_token(args.token), out_dir=out, progress=progress
        )
    except httpx.HTTPStatusError as exc:
        print(
            f"\nerror: the sandbox refused the data: HTTP {exc.response.status_code}",
            file=sys.stderr,
        )
        return 1
    except httpx.HTTPError as exc:
        print(
            f"\nerror: cannot reach the sandbox at {args.crm_url}: {exc}; "
            "is `lead-scoring sandbox` running?",
            file=sys.stderr,
        )
        return 1
    print(file=sys.stderr)
    print(
        f"{summary.contacts:,} contacts ({summary.contacts_created:,} created, "
        f"{summary.contacts_updated:,} updated, {summary.contacts_unchanged:,} unchanged), "
        f"{summary.email_events:,} email events, "
        f"{summary.web_events:,} web events in {summary.files} files under {summary.events_dir}"
    )
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from lead_scoring.backtest.cli import cmd_backtest as run

    return run(args)


def cmd_dbt_parse(_: argparse.Namespace) -> int:
    from lead_scoring.runtime.dbt_tools import parse_project

    print(f"wrote {parse_project()}")
    return 0


def cmd_dbt_lint(args: argparse.Namespace) -> int:
    from lead_scoring.runtime.dbt_tools import lint_models

    return lint_models(fix=args.fix)


def cmd_quality_init(_: argparse.Namespace) -> int:
    from lead_scoring.config import warehouse_config
    from lead_scoring.quality.context import init_context
    from lead_scoring.quality.scope import prepare_views

    warehouse = warehouse_config()
    prepare_views(warehouse)  # GX checks that every asset's table exists
    os.environ["WAREHOUSE_URL"] = warehouse.sqlalchemy_url()
    print(f"wrote the Great Expectations context in {init_context()}")
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    from lead_scoring.config import dbt_project_dir
    from lead_scoring.rules.validate import RulesetError, validate_ruleset

    folder = (args.folder or dbt_project_dir() / "seeds").resolve()
    try:
        checked = validate_ruleset(folder)
    except RulesetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"ruleset {folder}: {checked} rows checked, no problems")
    return 0


def cmd_check_secrets(args: argparse.Namespace) -> int:
    from lead_scoring.runtime.secrets_check import secret_problems

    problems = secret_problems()
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print(
            f"refusing to start: {len(problems)} secret(s) must be set first (.env; "
            ".env.example says how to generate each)",
            file=sys.stderr,
        )
        return 1
    print("secrets: none is a placeholder")
    return 0


COMMANDS = {
    "rules": cmd_rules,
    "check-secrets": cmd_check_secrets,
    "demo": cmd_demo,
    "airflow": cmd_airflow,
    "grant-bi-reader": cmd_grant_bi_reader,
    "dbt-docs": cmd_dbt_docs,
    "explain": cmd_explain,
    "sandbox": cmd_sandbox,
    "synth": cmd_synth,
    "dbt-parse": cmd_dbt_parse,
    "backtest": cmd_backtest,
    "dbt-lint": cmd_dbt_lint,
    "quality-init": cmd_quality_init,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from lead_scoring.config import ConfigError

    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
