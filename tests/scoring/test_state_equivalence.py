"""Incremental scoring state against a full rebuild (issue 21), real PostgreSQL and real dbt.

A synthetic portal's raw rows are held back and loaded day by day, the way hourly extractions
land them. After each day is loaded, the warehouse is built as the DAG builds it (incremental:
the activity state recomputes only the actors with new rows, and only the scores that changed
are written) and, from the same raw tables, a full rebuild into other schemas (every model from
scratch). On every day - a day with new events, a day without (decay only), a day with an
attribute change and a rules edit, and a day that also brings late events for a day already
scored - the current scores, the daily summary and the lead profile must be the same, every
column; the ledger lines of the scores that changed that day too, and every current score's
lines add up to the same components.

Two columns differ by design: a score version's `as_of_date`/`score_id` name the day it was
first scored (a rebuild starts every version that day), and the MQL/SQL dates carry the first
day a lead qualified, which a rebuild of one day does not have; they are checked against the
rebuilds of every day instead. Finally a backfill of day 2, after all later activity has been
loaded, replays the actors active since: it must compute exactly day 2's scores again and
leave the versions alone.
"""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lead_scoring.backtest.adapters import write_synthetic
from lead_scoring.backtest.contract import import_dataset
from lead_scoring.config import WarehouseConfig, dbt_project_dir
from lead_scoring.runtime.dbt_tools import build_as_of, run_dbt
from lead_scoring.synth.generator import SynthConfig
from lead_scoring.warehouse import connect, ensure_landing_zone

pytestmark = pytest.mark.integration

END = date(2026, 6, 30)
REFERENCE = "eqref"  # the rebuild's schemas: eqref_staging, eqref_intermediate, ...

# Each raw table and the column that says when its row happened (what a day's load brings).
RAW = {
    "raw_crm.email_events": "created_at",
    "raw_analytics.web_events": "event_timestamp",
    "raw_analytics.identifies": "event_timestamp",
    "raw_crm.contact_property_history": "changed_at",
}
# Each mart compared: its key, and the columns left out of the comparison (see above).
VERSION_DAY = ("score_id", "as_of_date", "scored_at", "mql_date", "sql_date")
MARTS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "fct_lead_scores": ("lead_id, scoring_model_id", VERSION_DAY, "true"),
    "fct_lead_score_summary": ("scoring_model_id, segment, band", (), "as_of_date = %(day)s"),
    "dim_leads": ("lead_id", (), "as_of_date = %(day)s"),
    # the lines written today: those of the scores that changed
    "fct_lead_score_ledger": ("score_line_id", ("score_id",), "as_of_date = %(day)s"),
}
# Every current score's lines, summed per component: the same whatever day they were written.
LINE_SUMS = """
    select lead_id, scoring_model_id, component, sum(points), sum(points_after_caps),
        sum(decay_points)
    from {schema}_marts.fct_lead_score_ledger group by 1, 2, 3 order by 1, 2, 3
"""


@pytest.fixture
def held_portal(warehouse: WarehouseConfig, tmp_path: Path) -> WarehouseConfig:
    """A synthetic portal imported, then moved aside into `held.*`: the contacts stay, the
    events are loaded back day by day by `load_through`."""
    folder = tmp_path / "synthetic"
    write_synthetic(SynthConfig(contacts=120, seed=21, end=END, days=60), folder)
    with connect(warehouse) as conn:
        ensure_landing_zone(conn)
    import_dataset(warehouse, folder)
    with connect(warehouse) as conn:
        conn.execute("create schema held")
        for table in RAW:
            name = table.split(".")[1]
            conn.execute(f"create table held.{name} as select * from {table}")
            conn.execute(f"truncate {table}")
    return warehouse


def load_stamp(day: date) -> str:
    """When ``load_through(day)`` says its rows were loaded: an hour after the day ended."""
    return f"{(day + timedelta(days=1)).isoformat()}T01:00:00Z"


def load_through(warehouse: WarehouseConfig, day: date, *, hold: str = "false") -> int:
    """Load the held rows of every day up to ``day``, except those ``hold`` selects (a SQL
    condition on the held row ``h``, where ``{col}`` is the table's time column), as the next
    morning's extraction would: stamped one hour after the day ended, so each day's load is
    far apart from the last (the rollup takes rows loaded since its newest, less an hour's
    look-back). Returns how many rows it loaded."""
    loaded_at = load_stamp(day)
    loaded = 0
    with connect(warehouse) as conn:
        for table, happened in RAW.items():
            name = table.split(".")[1]
            picked = f"h.{happened} < %(next_day)s and not ({hold.format(col=happened)})"
            params = {"next_day": day + timedelta(days=1), "loaded_at": loaded_at}
            conn.execute(
                f"update held.{name} as h set loaded_at = %(loaded_at)s where {picked}", params
            )
            moved = conn.execute(
                f"with moved as (delete from held.{name} as h where {picked} returning h.*) "
                f"insert into {table} select * from moved",
                params,
            )
            loaded += moved.rowcount
    return loaded


def change_attribute(warehouse: WarehouseConfig, day: date) -> str:
    """A new version of the most active contact on ``day``: another job title."""
    with connect(warehouse) as conn:
        row = conn.execute(
            "select lead_id from lead_scoring_intermediate.int_lead_activities__daily "
            "group by lead_id order by count(*) desc, lead_id limit 1"
        ).fetchone()
        assert row is not None
        conn.execute(
            "insert into raw_crm.contacts (contact_id, updated_at, properties, properties_hash, "
            "archived, raw, batch_id, loaded_at) "
            "select contact_id, %s, properties || %s::jsonb, md5(properties_hash || 'ceo'), "
            "archived, raw, batch_id, clock_timestamp() from raw_crm.contacts "
            "where contact_id = %s order by updated_at desc limit 1",
            (f"{day.isoformat()}T09:00:00Z", json.dumps({"jobtitle": "CEO"}), row[0]),
        )
        return str(row[0])


def edited_rules(tmp_path: Path) -> Path:
    """The dbt project with two behavioural rules edited: other points, another page."""
    project = tmp_path / "edited_project"
    shutil.copytree(
        dbt_project_dir(), project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages")
    )
    seed = project / "seeds" / "behavioral_rules.csv"
    text = seed.read_text()
    assert ",^/pricing,10,3,7," in text
    assert ",^/blog/,5,3,7," in text
    seed.write_text(
        text.replace(",^/pricing,10,3,7,", ",^/pricing,15,2,7,").replace(
            ",^/blog/,5,3,7,", ",^/(blog|resources)/,5,3,14,"
        )
    )
    return project


def rows(warehouse: WarehouseConfig, schema: str, as_of: date) -> dict[str, list[tuple[Any, ...]]]:
    """Every compared column of each mart's rows for ``as_of`` (see MARTS)."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    with psycopg.connect(warehouse.conninfo()) as conn:
        for mart, (key, skipped, where) in MARTS.items():
            columns = [
                name
                for (name,) in conn.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = %s and table_name = %s order by ordinal_position",
                    (f"{schema}_marts", mart),
                )
                if name not in skipped
            ]
            assert columns, f"{schema}_marts.{mart} is missing"
            listed = ", ".join(columns)
            found[mart] = conn.execute(
                f"select {listed} from {schema}_marts.{mart} where {where} order by {key}",
                {"day": as_of},
            ).fetchall()
        found["line sums"] = conn.execute(LINE_SUMS.format(schema=schema)).fetchall()
        found["qualified"] = conn.execute(
            f"select lead_id, scoring_model_id, is_mql, is_sql from {schema}_marts.fct_lead_scores "
            "order by 1, 2"
        ).fetchall()
    return found


def snapshot(warehouse: WarehouseConfig, tables: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(warehouse.conninfo()) as conn:
        return {
            table: conn.execute(f"select * from {table} as t order by t").fetchall()
            for table in tables
        }


def incremental(warehouse: WarehouseConfig, target: Path, as_of: date, project: Path) -> str:
    done = build_as_of(warehouse, target, as_of, project=project)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return done.stdout


def recomputed_actors(target: Path) -> int:
    """How many actors the last build's activity state recomputed (the rows it inserted)."""
    results = json.loads((target / "run_results.json").read_text())["results"]
    (state,) = [
        r for r in results if r["unique_id"] == "model.lead_scoring.int_activity_actors__state"
    ]
    return int(state["adapter_response"]["rows_affected"])


def actors_loaded(warehouse: WarehouseConfig, day: date) -> int:
    """The actors with rows in ``load_through(day)``'s load."""
    with psycopg.connect(warehouse.conninfo()) as conn:
        row = conn.execute(
            "select count(distinct actor_id) "
            "from lead_scoring_intermediate.int_activities__rolled_up_daily "
            "where last_loaded_at = %s",
            (load_stamp(day),),
        ).fetchone()
    assert row is not None
    return int(row[0])


def reprojected(warehouse: WarehouseConfig) -> dict[str, int]:
    """How many leads the last build projected again, per reason (int_leads__reprojected)."""
    with psycopg.connect(warehouse.conninfo()) as conn:
        return {
            str(reason): int(count)
            for reason, count in conn.execute(
                "select reason, count(*) "
                "from lead_scoring_intermediate.int_leads__reprojected group by reason"
            )
        }


def rebuilt(
    warehouse: WarehouseConfig,
    target: Path,
    as_of: date,
    project: Path,
) -> dict[str, list[tuple[Any, ...]]]:
    """Every seed and model from scratch into the reference schemas, as of ``as_of``."""
    with connect(warehouse) as conn:
        for (schema,) in conn.execute(
            "select nspname from pg_namespace where nspname like %s", (f"{REFERENCE}\\_%",)
        ).fetchall():
            conn.execute(f"drop schema {schema} cascade")
    # a copy of the project whose profile names the reference schema (as backtests do)
    copy = target / "project"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns("target", "logs"))
    profile = copy / "profiles.yml"
    text = profile.read_text()
    assert "schema: lead_scoring\n" in text
    profile.write_text(text.replace("schema: lead_scoring\n", f"schema: {REFERENCE}\n"))
    done = run_dbt(
        warehouse,
        target,
        "build",
        "--exclude-resource-type",
        "test",
        "--exclude-resource-type",
        "unit_test",
        project=copy,
        as_of=as_of,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return rows(warehouse, REFERENCE, as_of)


def explained(warehouse: WarehouseConfig, as_of: date) -> list[tuple[Any, ...]]:
    """Every lead's lines as of ``as_of``, recomputed by the explain function."""
    with psycopg.connect(warehouse.conninfo()) as conn:
        return conn.execute(
            "select * from lead_scoring_marts.explain_lead_score(null, %s) order by score_line_id",
            (as_of,),
        ).fetchall()


def as_lines(ledger: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Ledger rows as the explain function returns lines (without the as-of date, the
    ruleset version and the scoring time)."""
    return [(*row[:3], *row[4:-2]) for row in ledger]


def changed_today(warehouse: WarehouseConfig) -> set[tuple[str, str]]:
    with psycopg.connect(warehouse.conninfo()) as conn:
        return {
            (str(lead), str(model))
            for lead, model in conn.execute(
                "select lead_id, scoring_model_id "
                "from lead_scoring_intermediate.int_lead_score_changes "
                "where change_type <> 'dropped'"
            )
        }


def assert_same(
    day: str,
    got: dict[str, list[Any]],
    expected: dict[str, list[Any]],
    changed: set[tuple[str, str]],
) -> None:
    # the rebuild writes every lead's lines; the incremental build those of today's changes
    expected = {
        **expected,
        "fct_lead_score_ledger": [
            r for r in expected["fct_lead_score_ledger"] if (r[1], r[2]) in changed
        ],
    }
    for mart in (*MARTS, "line sums"):
        expected_rows, got_rows = expected[mart], got[mart]
        assert expected_rows, f"{day}: the rebuild wrote no {mart} rows"
        missing = [r for r in expected_rows if r not in got_rows][:3]
        extra = [r for r in got_rows if r not in expected_rows][:3]
        assert got_rows == expected_rows, (
            f"{day}: {mart} differs from the rebuild ({len(got_rows)} rows against "
            f"{len(expected_rows)}); rebuild only: {missing}; incremental only: {extra}"
        )


def test_incremental_runs_score_exactly_as_a_full_rebuild(
    held_portal: WarehouseConfig, tmp_path: Path
) -> None:
    warehouse = held_portal
    original = dbt_project_dir()
    edited = edited_rules(tmp_path)
    # the late rows: a quarter of day 4's events, loaded only with day 5
    day = {n: END - timedelta(days=d) for n, d in ((1, 8), (2, 6), (3, 5), (4, 3), (5, 0))}
    late = (
        f"h.{{col}} >= '{day[4].isoformat()}' and h.{{col}} < '{day[4] + timedelta(days=1)}' "
        "and mod(abs(hashtext(cast(h as text))), 4) = 0"
    )
    steps: list[tuple[int, Path, str]] = [
        (1, original, "history up to day 1"),
        (2, original, "a day of new events"),
        (3, original, "a day without events: decay only"),
        (4, edited, "an attribute change and a rules edit"),
        (5, edited, "new events and late events of day 4"),
    ]
    qualified: dict[tuple[str, str], dict[str, date]] = {}
    with psycopg.connect(warehouse.conninfo()) as conn:
        counted_leads = conn.execute(
            "select count(distinct contact_id) from raw_crm.contacts"
        ).fetchone()
    assert counted_leads is not None
    leads = int(counted_leads[0])
    lines: dict[int, list[tuple[Any, ...]]] = {}
    day2: dict[str, list[Any]] = {}
    for number, project, story in steps:
        as_of = day[number]
        if number == 3:
            loaded = 0
        else:
            loaded = load_through(warehouse, as_of, hold=late if number == 4 else "false")
            assert loaded > 0, f"day {number}: nothing to load"
        if number == 4:
            change_attribute(warehouse, as_of)
        # one target per project, as a deployment keeps: a new day must not re-parse it
        target = tmp_path / f"inc-{project.name}"
        parsed_before = (target / "partial_parse.msgpack").exists()
        output = incremental(warehouse, target, as_of, project)
        if parsed_before:
            assert "Unable to do partial parsing" not in output, f"day {number} re-parsed"
        # the state recomputes exactly the actors this load brought rows for: none on a day
        # without events, not those of the day before again
        assert recomputed_actors(target) == actors_loaded(warehouse, as_of), f"day {number}"
        # the projections: every lead on the first day and after the rules edit; then only
        # the leads with new activity or a change due by the date (decay alone on day 3)
        why = reprojected(warehouse)
        if number in (1, 4):
            assert set(why) == {"first" if number == 1 else "rules"}, f"day {number}: {why}"
        else:
            assert 0 < sum(why.values()) < leads, f"day {number}: {why} of {leads} leads"
            assert ("activity" in why) == (number != 3), f"day {number}: {why}"
            assert set(why) <= {"activity", "time", "lead", "new"}, f"day {number}: {why}"
        got = rows(warehouse, "lead_scoring", as_of)
        changed = changed_today(warehouse)
        assert changed, f"day {number}: no score changed"
        expected = rebuilt(warehouse, tmp_path / f"ref{number}", as_of, project)
        assert_same(f"day {number} ({story}, {loaded} rows loaded)", got, expected, changed)
        # every lead's lines of the day, recomputed on demand, are the rebuild's ledger
        lines[number] = as_lines(expected["fct_lead_score_ledger"])
        assert explained(warehouse, as_of) == lines[number], f"day {number}: explain differs"
        if number == 3:  # before the rules edit: the lines of earlier days, recomputed later
            for earlier in (1, 2):
                assert explained(warehouse, day[earlier]) == lines[earlier], f"day {earlier}"
        for lead, model, is_mql, is_sql in expected["qualified"]:
            first = qualified.setdefault((lead, model), {})
            for flag, on in (("mql", is_mql), ("sql", is_sql)):
                if on:
                    first.setdefault(flag, as_of)
        if number == 2:
            day2 = snapshot(warehouse, ["lead_scoring_intermediate.int_lead_scores__as_of"])

    # The MQL/SQL dates are the first of the days scored on which the rebuild had the flag.
    with psycopg.connect(warehouse.conninfo()) as conn:
        dates = conn.execute(
            "select lead_id, scoring_model_id, mql_date, sql_date "
            "from lead_scoring_marts.fct_lead_scores"
        ).fetchall()
    assert any(mql for _, _, mql, _ in dates)
    assert {(lead, model): (mql, sql) for lead, model, mql, sql in dates} == {
        key: (first.get("mql"), first.get("sql")) for key, first in qualified.items()
    }

    # The state holds each actor once, however many days were scored.
    with psycopg.connect(warehouse.conninfo()) as conn:
        counted = conn.execute(
            "select (select count(*) from lead_scoring_intermediate.int_activity_actors__state), "
            "(select count(distinct actor_id) "
            "from lead_scoring_intermediate.int_activities__rolled_up_daily)"
        ).fetchone()
    assert counted is not None
    assert counted[0] == counted[1] > 0

    # A backfill of day 2 after everything else was loaded: the actors active since are
    # replayed from the rollup and day 2's scores come out exactly as first computed; the
    # versions, the current scores and the ledger stay as they are.
    kept = [f"lead_scoring_marts.{mart}" for mart in (
        "lead_score_history", "fct_lead_scores", "fct_lead_score_ledger", "fct_lead_score_summary"
    )]  # fmt: skip
    before = snapshot(warehouse, kept)
    incremental(warehouse, tmp_path / "backfill", day[2], original)
    again = snapshot(warehouse, ["lead_scoring_intermediate.int_lead_scores__as_of", *kept])
    with psycopg.connect(warehouse.conninfo()) as conn:
        replayed = conn.execute(
            "select count(*) filter (where is_replayed), count(*) "
            "from lead_scoring_intermediate.int_lead_actors__as_of"
        ).fetchone()
    assert replayed is not None
    assert replayed[0] > 0, "the backfill replayed no actor"
    for table, kept_rows in {**day2, **before}.items():
        missing = [r for r in kept_rows if r not in again[table]][:3]
        extra = [r for r in again[table] if r not in kept_rows][:3]
        assert again[table] == kept_rows, f"backfill changed {table}: lost {missing}, added {extra}"
    assert not changed_today(warehouse)
