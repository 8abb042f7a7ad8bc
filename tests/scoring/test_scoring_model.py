"""The scoring model end to end in the warehouse: real PostgreSQL, real `dbt build`.

Raw rows for a handful of leads with known stories are loaded, the whole dbt project is built
for several as-of dates, and the scores must tell those stories: a decision-stage buyer with the
right persona beats a student who only reads the blog, an unsubscribe costs points, a lead
dormant for 60 days decays and recovers when it comes back, and scoring the same as-of date
twice gives identical rows. dbt's own data tests (ledger sums, fan-out guard, clamp, keys) run in
the same builds; the unit tests of every rule type run at the end.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lead_scoring.config import WarehouseConfig
from lead_scoring.load.batch import load_batch
from lead_scoring.load.tables import WEB_EVENTS
from lead_scoring.runtime.dbt_tools import build_as_of, run_dbt
from lead_scoring.warehouse import connect, ensure_landing_zone

pytestmark = pytest.mark.integration
T = date(2026, 6, 30)
BATCH = str(uuid.uuid4())


def at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


CONTACTS = {
    "1": {"email": "buyer@acme.com", "jobtitle": "VP Sales", "industry": "Software",
          "numemployees": "1000+", "country": "United States"},
    "2": {"email": "student@uni.edu", "jobtitle": "Student", "industry": "Education",
          "numemployees": "1-5", "country": "India"},
    "3": {"email": "quitter@globex.com", "jobtitle": "Marketing Manager", "industry": "Retail",
          "numemployees": "50-100", "country": "Germany"},
    "4": {"email": "sleeper@initech.com", "jobtitle": "Marketing Manager", "industry": "Retail",
          "numemployees": "50-100", "country": "Germany"},
}  # fmt: skip


def web(message: str, anonymous: str, when: datetime, kind: str, **extra: Any) -> tuple[Any, ...]:
    raw: dict[str, Any] = {"type": kind, "anonymousId": anonymous, "messageId": message}
    name = extra.get("event")
    if "path" in extra:
        raw["context"] = {"page": {"path": extra["path"]}}
    if "email" in extra:
        raw["traits"] = {"email": extra["email"]}
    return (message, kind, name, anonymous, None, when, json.dumps(raw), "test.jsonl", 1, "segment")


def story() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(web events, email events) for the four leads, relative to the as-of date T."""
    events = [
        # 1: the right persona, pricing, then a demo request
        web("w1", "a1", at(T - timedelta(days=10)), "identify", email="buyer@acme.com"),
        web("w2", "a1", at(T - timedelta(days=5)), "page", path="/pricing"),
        web("w3", "a1", at(T - timedelta(days=3)), "track", event="Demo Requested", path="/demo"),
        # 2: a student reading the blog
        web("w4", "b1", at(T - timedelta(days=9)), "identify", email="student@uni.edu"),
        *(
            web(f"w5{i}", "b1", at(T - timedelta(days=2), 10 + i), "page", path=f"/blog/p{i}")
            for i in range(3)
        ),
        # 4: engaged 70 days ago, then silent; comes back the day after T
        web("w6", "d1", at(T - timedelta(days=72)), "identify", email="sleeper@initech.com"),
        web("w7", "d1", at(T - timedelta(days=70)), "page", path="/pricing"),
        web("w8", "d1", at(T - timedelta(days=70), 11), "track", event="Webinar Attended",
            path="/webinars/x"),
        web("w9", "d1", at(T + timedelta(days=1)), "page", path="/pricing"),
    ]  # fmt: skip
    emails = [
        # 3: opens and clicks, then unsubscribes the day before T
        ("e1", "OPEN", "quitter@globex.com", at(T - timedelta(days=5)), {}),
        ("e2", "CLICK", "quitter@globex.com", at(T - timedelta(days=5), 11), {}),
        ("e3", "STATUSCHANGE", "quitter@globex.com", at(T - timedelta(days=1)),
         {"portalSubscriptionStatus": "UNSUBSCRIBED"}),
    ]  # fmt: skip
    return events, [
        (eid, kind, to, when, json.dumps({"id": eid, "type": kind, "recipient": to, **extra}))
        for eid, kind, to, when, extra in emails
    ]


@pytest.fixture
def scored_warehouse(warehouse: WarehouseConfig) -> WarehouseConfig:
    created = at(T - timedelta(days=120))
    web_rows, email_rows = story()
    with connect(warehouse) as conn:
        ensure_landing_zone(conn)
        now = datetime.now(UTC)
        with conn.cursor() as cur:
            for contact_id, props in CONTACTS.items():
                properties = {**props, "createdate": created.isoformat()}
                cur.execute(
                    "insert into raw_crm.contacts (contact_id, updated_at, properties, "
                    "properties_hash, archived, raw, batch_id, loaded_at) "
                    "values (%s, %s, %s, %s, false, %s, %s, %s)",
                    (contact_id, created, json.dumps(properties), contact_id, "{}", BATCH, now),
                )
            cur.executemany(
                "insert into raw_crm.email_events (event_id, event_type, recipient, created_at, "
                f"raw, batch_id, loaded_at) values (%s, %s, %s, %s, %s, '{BATCH}', now())",
                email_rows,
            )
    # Web events go through the loader, which also files the identify calls in identifies.
    load_batch(warehouse, table=WEB_EVENTS, source="test.web_events", records=web_rows)
    return warehouse


def dbt(warehouse: WarehouseConfig, target: Path, *args: str) -> str:
    done = run_dbt(warehouse, target, *args)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return done.stdout


def build(warehouse: WarehouseConfig, target: Path, as_of: date) -> None:
    done = build_as_of(warehouse, target, as_of)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def scores(warehouse: WarehouseConfig, as_of: date) -> dict[str, tuple[Any, ...]]:
    with psycopg.connect(warehouse.conninfo()) as conn:
        # the version current on that date (the columns of fct_lead_scores, then its validity)
        rows = conn.execute(
            "select * from lead_scoring_marts.lead_score_history where dbt_valid_from <= %s "
            "and (dbt_valid_to is null or dbt_valid_to > %s) and scoring_model_id = 'default' "
            "order by lead_id",
            (cutoff(as_of), cutoff(as_of)),
        ).fetchall()
    return {str(row[1]): tuple(row) for row in rows}


def cutoff(as_of: date) -> datetime:
    """The instant a score as of ``as_of`` is valid from (UTC, as the history stores it)."""
    return datetime.combine(as_of + timedelta(days=1), time())


def total(rows: dict[str, tuple[Any, ...]], lead: str) -> int:
    return int(rows[lead][11])  # total_score


def test_dbt_docs_are_one_file_with_the_marts_and_their_columns(
    scored_warehouse: WarehouseConfig, tmp_path: Path
) -> None:
    from lead_scoring.runtime.dbt_tools import generate_docs

    build(scored_warehouse, tmp_path / "build", T)
    page = generate_docs(scored_warehouse, tmp_path / "docs")
    html = page.read_text()
    assert page.name == "static_index.html"
    for name in ("fct_lead_scores", "fct_lead_score_ledger", "ruleset_version", "top_reasons"):
        assert name in html, name
    assert '"type": "BASE TABLE"' in html  # the warehouse's catalog is in the page too


def test_scores_tell_each_leads_story_and_are_reproducible(
    scored_warehouse: WarehouseConfig, tmp_path: Path
) -> None:
    warehouse = scored_warehouse
    for as_of in (T - timedelta(days=69), T - timedelta(days=2), T, T + timedelta(days=1)):
        build(warehouse, tmp_path, as_of)
    before_quit, at_t, after = (
        scores(warehouse, T - timedelta(days=2)),
        scores(warehouse, T),
        scores(warehouse, T + timedelta(days=1)),
    )
    fresh = scores(warehouse, T - timedelta(days=69))
    with psycopg.connect(warehouse.conninfo()) as conn:
        columns = [
            r[0]
            for r in conn.execute(
                "select column_name from information_schema.columns where table_schema = "
                "'lead_scoring_marts' and table_name = 'fct_lead_scores' order by ordinal_position"
            )
        ]
    assert columns[11] == "total_score"

    # The buyer with a demo request outranks the student who read the blog, by far.
    assert total(at_t, "1") >= 70
    assert at_t["1"][columns.index("band")] == "hot"
    assert at_t["1"][columns.index("fit_grade")] == "A"
    assert at_t["1"][columns.index("has_decision_signal")] is True
    assert total(at_t, "2") < 20
    assert at_t["2"][columns.index("fit_grade")] == "D"
    assert total(at_t, "1") > total(at_t, "2") + 50

    # The unsubscribe costs the lead its points.
    assert total(at_t, "3") < total(before_quit, "3")
    assert "Unsubscribed" not in str(at_t["3"][columns.index("top_reasons")])

    # Dormant for 60+ days: decayed below its fresh score; back on the site: recovers.
    assert total(at_t, "4") < total(fresh, "4")
    assert total(after, "4") > total(at_t, "4")

    # Scoring the same as-of date again gives identical rows (scored_at included), and
    # re-running an older date leaves the score history alone.
    with psycopg.connect(warehouse.conninfo()) as conn:
        history = conn.execute("select * from lead_scoring_marts.lead_score_history").fetchall()
    build(warehouse, tmp_path, T)
    assert scores(warehouse, T) == at_t
    with psycopg.connect(warehouse.conninfo()) as conn:
        again = conn.execute("select * from lead_scoring_marts.lead_score_history").fetchall()
        versions = conn.execute(
            "select count(*) from lead_scoring_marts.lead_score_history "
            "where lead_id = '4' and scoring_model_id = 'default'"
        ).fetchone()
    assert sorted(map(str, again)) == sorted(map(str, history))
    assert versions is not None
    assert versions[0] >= 3

    # The unit tests of every rule type pass against this warehouse.
    output = dbt(warehouse, tmp_path, "test", "--select", "test_type:unit", "--vars",
                 json.dumps({"as_of": T.isoformat()}))  # fmt: skip
    assert "PASS=19" in output.replace(" ", "")

    # A late event loaded after the builds lands in the incremental rollup exactly once, on
    # its own (past) day, and only that day is recomputed.
    rollup_sql = (
        "select activity_date, sum(activity_count), max(last_loaded_at) "
        "from lead_scoring_intermediate.int_activities__rolled_up_daily group by 1 order by 1"
    )
    with psycopg.connect(warehouse.conninfo()) as conn:
        rollup_before = conn.execute(rollup_sql).fetchall()
    late_day = T - timedelta(days=4)
    late = web("w10", "a1", at(late_day, 15), "page", path="/pricing")
    load_batch(warehouse, table=WEB_EVENTS, source="test.web_events", records=[late])
    build(warehouse, tmp_path, T)
    with psycopg.connect(warehouse.conninfo()) as conn:
        rollup_after = conn.execute(rollup_sql).fetchall()
    changed = [a for a in rollup_after if a not in rollup_before]
    assert [(day, count) for day, count, _ in changed] == [(late_day, 1)]
    assert len(rollup_after) == len(rollup_before) + 1

    # The marts' keys, not-nulls and allowed values are enforced by the warehouse (contract
    # constraints), so a bad row cannot be written at all.
    with psycopg.connect(warehouse.conninfo(), autocommit=True) as conn:
        rejected = {
            "duplicate score": "insert into lead_scoring_marts.fct_lead_scores "
            "select * from lead_scoring_marts.fct_lead_scores limit 1",
            "unknown band": "update lead_scoring_marts.fct_lead_scores set band = 'lukewarm'",
            "unknown fit grade": "update lead_scoring_marts.fct_lead_scores set fit_grade = 'E'",
            "score without a total": "update lead_scoring_marts.fct_lead_scores "
            "set total_score = null",
            "duplicate ledger line": "insert into lead_scoring_marts.fct_lead_score_ledger "
            "select * from lead_scoring_marts.fct_lead_score_ledger limit 1",
            "unknown component": "update lead_scoring_marts.fct_lead_score_ledger "
            "set component = 'bonus'",
            "ledger line without points": "update lead_scoring_marts.fct_lead_score_ledger "
            "set points = null",
            "duplicate lead": "insert into lead_scoring_marts.dim_leads "
            "select * from lead_scoring_marts.dim_leads limit 1",
        }
        for what, statement in rejected.items():
            with pytest.raises(psycopg.errors.IntegrityError) as rejected_by:
                conn.execute(statement)
            assert rejected_by.value.sqlstate, what
