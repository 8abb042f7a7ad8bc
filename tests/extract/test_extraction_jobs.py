"""Extraction against the sandbox over real HTTP into a real PostgreSQL: incremental windows,
the 10k search cap, fault storms, dirty data, interval re-runs and a killed load."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lead_scoring.config import WarehouseConfig
from lead_scoring.crm.client import HubSpotClient
from lead_scoring.extract import jobs
from lead_scoring.load.batch import Interval
from lead_scoring.sandbox import Faults, Sandbox
from lead_scoring.sandbox.admin import SandboxAdmin
from lead_scoring.synth import SynthConfig, generate, write_dataset
from lead_scoring.synth.generator import EXPECTED_QUARANTINE, SQL_NAMES
from lead_scoring.warehouse import connect, ensure_landing_zone

pytestmark = pytest.mark.integration

DAY1 = Interval(datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC))
DAY2 = Interval(datetime(2026, 6, 2, tzinfo=UTC), datetime(2026, 6, 3, tzinfo=UTC))


def client_for(sandbox: Sandbox) -> HubSpotClient:
    """The product's client, with short backoffs so fault storms do not slow the suite."""
    return HubSpotClient(
        sandbox.url, sandbox.token, backoff_base=0.01, backoff_cap=0.2, max_attempts=15
    )


def query(warehouse: WarehouseConfig, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with connect(warehouse) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def watermark(warehouse: WarehouseConfig, source: str) -> datetime | None:
    found = query(
        warehouse,
        "select watermark from lead_scoring_ops.extract_state where source = %s",
        (source,),
    )
    return found[0][0] if found else None


def seed(
    sandbox: Sandbox, contacts: list[dict[str, Any]], events: list[dict[str, Any]] | None = None
) -> None:
    with SandboxAdmin(sandbox.url, sandbox.token) as admin:
        for start in range(0, len(contacts), 2000):
            admin.seed_contacts(contacts[start : start + 2000])
        if events:
            admin.seed_email_events(list(events))


def people(count: int, updated: str, title: str = "VP Sales") -> list[dict[str, Any]]:
    return [
        {
            "properties": {"email": f"p{i}@example.com", "jobtitle": title},
            "createdAt": "2026-01-01T00:00:00.000Z",
            "updatedAt": updated,
        }
        for i in range(count)
    ]


def routes(sandbox: Sandbox) -> Counter[tuple[str, int]]:
    with SandboxAdmin(sandbox.url, sandbox.token) as admin:
        stats = admin.stats()
    return Counter({(r["route"], r["status"]): r["calls"] for r in stats["requests"]})


def test_property_history_follows_the_contacts_that_changed(
    warehouse: WarehouseConfig, sandbox: Sandbox
) -> None:
    contacts = people(120, "2026-03-01T00:00:00.000Z")
    for contact in contacts[:2]:  # two leads that became MQLs, then opportunities
        contact["properties"] |= {
            "lifecyclestage": "opportunity",
            "hs_lifecyclestage_lead_date": "2026-01-01T00:00:00.000Z",
            "hs_lifecyclestage_marketingqualifiedlead_date": "2026-02-01T00:00:00.000Z",
            "hs_lifecyclestage_opportunity_date": "2026-03-01T00:00:00.000Z",
        }
    seed(sandbox, contacts)
    stages_sql = (
        "select value, changed_at from raw_crm.contact_property_history "
        "where contact_id = %s and property = 'lifecyclestage' order by changed_at"
    )
    with client_for(sandbox) as client:
        jobs.extract_contacts(warehouse, client, interval=DAY1)
        first = jobs.extract_property_history(warehouse, client, interval=DAY1)
        # 120 contacts by id, 50 per batch read: three calls.
        assert routes(sandbox)[("contacts.batch_read", 200)] == 3
        assert first.rows_quarantined == 0
        assert [v for v, _ in query(warehouse, stages_sql, ("1",))] == [
            "lead", "marketingqualifiedlead", "opportunity",
        ]  # fmt: skip
        assert query(
            warehouse,
            "select count(distinct contact_id) from raw_crm.contact_property_history "
            "where property = 'jobtitle'",
        ) == [(120,)]

        # Nothing changed: no contact is read again.
        again = jobs.extract_property_history(warehouse, client, interval=DAY1)
        assert (again.rows_read, routes(sandbox)[("contacts.batch_read", 200)]) == (0, 3)

        # A sales rep moves one lead on: only that contact's history is read, and it gains
        # exactly the new stage.
        client.batch_update_contacts([{"id": "2", "properties": {"lifecyclestage": "customer"}}])
        jobs.extract_contacts(warehouse, client, interval=DAY2)
        later = jobs.extract_property_history(warehouse, client, interval=DAY2)
    assert routes(sandbox)[("contacts.batch_read", 200)] == 4
    assert later.rows_inserted == 1
    assert [v for v, _ in query(warehouse, stages_sql, ("2",))][-1] == "customer"


def test_first_run_lists_everything_then_search_reads_only_what_changed(
    warehouse: WarehouseConfig, sandbox: Sandbox
) -> None:
    seed(sandbox, people(250, "2026-01-05T00:00:00.000Z"))
    with client_for(sandbox) as client:
        first = jobs.extract_contacts(warehouse, client, interval=DAY1)
        first_mark = watermark(warehouse, jobs.CONTACTS_SOURCE)
        assert (first.rows_read, first.rows_inserted) == (250, 250)
        assert first_mark is not None
        assert routes(sandbox)[("contacts.list", 200)] == 3
        assert routes(sandbox)[("contacts.search", 200)] == 0

        changed = client.batch_update_contacts(
            [{"id": str(i), "properties": {"jobtitle": "CMO"}} for i in (3, 70, 200)]
        )
        assert changed.status_code == 200
        second = jobs.extract_contacts(warehouse, client, interval=DAY2)
    assert (second.rows_read, second.rows_inserted) == (3, 3)
    assert routes(sandbox)[("contacts.search", 200)] == 1
    second_mark = watermark(warehouse, jobs.CONTACTS_SOURCE)
    assert second_mark is not None
    assert second_mark > first_mark
    batches = query(
        warehouse,
        "select mode, window_start, window_end, interval_start from lead_scoring_ops.load_batches "
        "where source = 'hubspot.contacts' order by started_at",
    )
    assert [b[0] for b in batches] == ["full_refresh", "incremental"]
    assert batches[1][1] == first_mark - jobs.overlap()  # [watermark - overlap, run start]
    assert batches[1][2] == second_mark
    assert batches[1][3] == DAY2.start
    versions = query(
        warehouse,
        "select contact_id, count(*) from raw_crm.contacts "
        "group by 1 having count(*) > 1 order by 1",
    )
    assert versions == [("200", 2), ("3", 2), ("70", 2)]


def test_more_than_10k_changes_with_one_timestamp_are_read_exactly_once(
    warehouse: WarehouseConfig, sandbox: Sandbox
) -> None:
    """A bulk job stamped 10,250 contacts with one lastmodifieddate (Airbyte #43317)."""
    seed(sandbox, people(10_250, "2026-06-01T12:00:00.000Z"))
    with connect(warehouse, autocommit=True) as conn:
        ensure_landing_zone(conn)
        conn.execute(
            "insert into lead_scoring_ops.extract_state values "
            "('hubspot.contacts', '2026-06-01T00:00:00Z', gen_random_uuid(), now())"
        )
    with client_for(sandbox) as client:
        result = jobs.extract_contacts(warehouse, client, now=datetime(2026, 6, 2, tzinfo=UTC))
    assert result.rows_read == 10_250
    assert result.rows_inserted == 10_250
    assert query(warehouse, "select count(distinct contact_id) from raw_crm.contacts") == [
        (10_250,)
    ]
    calls = routes(sandbox)
    assert calls[("contacts.search", 400)] == 0  # never paged past the cap
    assert calls[("contacts.search", 200)] == 52  # 10,250 / 200 rounded up: no page read twice


def test_429_5xx_and_dropped_connection_storms_lose_and_duplicate_nothing(
    warehouse: WarehouseConfig,
) -> None:
    now = datetime.now(UTC)
    events = [
        {
            "id": f"e{i}",
            "created": int((now - timedelta(hours=1 + i * 0.2)).timestamp() * 1000),
            "type": "OPEN",
            "recipient": f"p{i % 1000}@example.com",
        }
        for i in range(3000)
    ]
    faults = Faults(rate_429=0.2, rate_5xx=0.1, drop_rate=0.05, seed=11)
    with Sandbox(port=0, token="storm-token", faults=faults, search_per_second=50) as sandbox:
        seed(sandbox, people(1000, "2026-01-05T00:00:00.000Z"), events)
        with client_for(sandbox) as client:
            client.search_min_interval = 0.02
            jobs.extract_contacts(warehouse, client, interval=DAY1)
            updated = 0
            for start in range(0, 300, 100):
                result = client.batch_update_contacts(
                    [
                        {"id": str(i), "properties": {"jobtitle": "CFO"}}
                        for i in range(start + 1, start + 101)
                    ]
                )
                updated += len(result.results)
            jobs.extract_contacts(warehouse, client, interval=DAY2)
            email = jobs.extract_email_events(
                warehouse, client, interval=DAY1, lookback=timedelta(days=30)
            )
            retries = client.stats.retries
        injected = faults.as_dict()["injected"]
    assert updated == 300
    assert min(injected.values()) > 0, injected
    assert retries == sum(injected.values())  # every injected fault was met and retried once
    assert query(
        warehouse, "select count(*), count(distinct contact_id) from raw_crm.contacts"
    ) == [(1300, 1000)]
    assert query(
        warehouse,
        "select count(*) from raw_crm.contacts where properties ->> 'jobtitle' = 'CFO'",
    ) == [(300,)]
    assert email.rows_inserted == 3000
    stored = {r[0] for r in query(warehouse, "select event_id from raw_crm.email_events")}
    assert stored == {e["id"] for e in events}


def test_dirty_dataset_lands_in_quarantine_with_the_right_reasons(
    warehouse: WarehouseConfig, sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = SynthConfig(contacts=300, seed=5, end=datetime.now(UTC).date(), dirty_share=1.0)
    bundles = list(generate(config))
    expected = Counter(b.dirty for b in bundles)
    sql_names = {
        (b.contact["properties"]["firstname"], b.contact["properties"]["lastname"])
        for b in bundles
        if b.dirty == "sql_name"
    }
    assert set(expected) == set(EXPECTED_QUARANTINE)  # every kind is exercised
    write_dataset(config, crm_url=sandbox.url, token=sandbox.token, out_dir=tmp_path / "ds")

    caplog.set_level(logging.WARNING, logger="lead_scoring")
    with client_for(sandbox) as client:
        contacts = jobs.extract_contacts(warehouse, client, interval=DAY1)
        email = jobs.extract_email_events(warehouse, client, interval=DAY1)
    web = jobs.load_web_events(warehouse, tmp_path / "ds" / "events", interval=DAY1)

    crm_reasons = Counter(contacts.quarantine_reasons) + Counter(email.quarantine_reasons)
    assert crm_reasons == Counter(
        {"invalid_email": expected["bad_email"], "unknown_type": expected["unknown_email_type"]}
    )
    assert web.quarantine_reasons == Counter(
        {
            "malformed_json": expected["malformed_json"],
            "unknown_type": expected["unknown_event_type"],
            "future_timestamp": expected["future_event"],
            "oversized_event": expected["huge_event"],
        }
    )
    assert web.rows_duplicate == expected["duplicate_event"]  # replays loaded once
    # Quarantine rows keep the reason and the payload as it came.
    stored = query(
        warehouse,
        "select reason, count(*), bool_and(length(raw_payload) > 0) "
        "from raw_analytics.quarantine group by 1 order by 1",
    )
    assert stored == sorted((r, n, True) for r, n in web.quarantine_reasons.items())
    logged = {r.getMessage() for r in caplog.records}
    assert any("reason malformed_json" in m for m in logged)
    assert any("reason invalid_email" in m for m in logged)
    # Valid but awkward values are loaded verbatim: quotes, SQL, backslashes, \N, long titles.
    names = {
        tuple(r)
        for r in query(
            warehouse,
            "select properties ->> 'firstname', properties ->> 'lastname' from raw_crm.contacts",
        )
    }
    assert sql_names <= set(SQL_NAMES)
    assert sql_names <= names  # each stored exactly as written
    assert query(
        warehouse,
        "select count(*) from raw_crm.contacts where length(properties ->> 'jobtitle') = 10000",
    ) == [(expected["long_title"],)]
    assert query(
        warehouse,
        "select count(*) from raw_crm.contacts where properties ->> 'email' like '%+crm@%'",
    ) == [(expected["duplicate_contact"],)]


def write_events(path: Path, prefix: str, count: int, day: str = "2026-05-30") -> None:
    with path.open("w") as handle:
        for i in range(count):
            event = {
                "type": "page",
                "anonymousId": f"a-{prefix}-{i % 7}",
                "messageId": f"{prefix}-{i}",
                "timestamp": f"{day}T10:00:00.000Z",
                "properties": {"path": "/pricing"},
            }
            if i % 10 == 0:  # every tenth call says who the visitor is
                event = {**event, "type": "identify", "traits": {"email": f" P{i}@X.com "}}
            handle.write(json.dumps(event) + "\n")


def test_rerunning_an_interval_replaces_its_rows_and_reads_the_same_input(
    warehouse: WarehouseConfig, sandbox: Sandbox, tmp_path: Path
) -> None:
    write_events(tmp_path / "a.jsonl", "a", 40)
    write_events(tmp_path / "b.jsonl", "b", 60)
    first = jobs.load_web_events(warehouse, tmp_path, interval=DAY1)
    write_events(tmp_path / "c.jsonl", "c", 25)  # arrives after the first run of DAY1
    rerun = jobs.load_web_events(warehouse, tmp_path, interval=DAY1)
    assert (first.rows_inserted, rerun.rows_read, rerun.rows_replaced, rerun.rows_inserted) == (
        100, 100, 100, 100,
    )  # fmt: skip
    day2 = jobs.load_web_events(warehouse, tmp_path, interval=DAY2)
    unchanged = jobs.load_web_events(warehouse, tmp_path, interval=None)
    assert (day2.rows_read, day2.rows_inserted, unchanged.rows_read) == (25, 25, 0)
    by_interval = query(
        warehouse,
        "select interval_start, count(*) from raw_analytics.web_events group by 1 order by 1",
    )
    assert by_interval == [(DAY1.start, 100), (DAY2.start, 25)]
    # Identify calls are also filed in identifies, replaced with their batch on a re-run, and
    # an older warehouse gets its identifies filled from web_events when the table appears.
    identifies_sql = (
        "select interval_start, count(*), count(distinct batch_id), min(email) "
        "from raw_analytics.identifies group by 1 order by 1"
    )
    expected = [(DAY1.start, 10, 1, "p0@x.com"), (DAY2.start, 3, 1, "p0@x.com")]
    assert query(warehouse, identifies_sql) == expected
    with connect(warehouse, autocommit=True) as conn:
        conn.execute("drop table raw_analytics.identifies")
        ensure_landing_zone(conn)
    assert query(warehouse, "select count(*) from raw_analytics.identifies") == [(13,)]

    now = datetime.now(UTC)
    events = [
        {"id": f"m{i}", "created": int((now - timedelta(days=i % 20)).timestamp() * 1000),
         "type": "SENT", "recipient": "p1@example.com"}
        for i in range(500)
    ]  # fmt: skip
    seed(sandbox, people(5, "2026-01-05T00:00:00.000Z"), events)
    with client_for(sandbox) as client:
        once = jobs.extract_email_events(warehouse, client, interval=DAY1, lookback=timedelta(30))
        seed(sandbox, [], [{**events[0], "id": "late", "created": events[0]["created"] + 1}])
        again = jobs.extract_email_events(warehouse, client, interval=DAY1, lookback=timedelta(30))
        contacts = jobs.extract_contacts(warehouse, client, interval=DAY1)
        contacts_again = jobs.extract_contacts(warehouse, client, interval=DAY1)
    assert (once.rows_inserted, again.rows_replaced, again.rows_inserted) == (500, 500, 501)
    windows = query(
        warehouse,
        "select distinct window_start, window_end from lead_scoring_ops.load_batches "
        "where source = 'hubspot.email_events'",
    )
    assert len(windows) == 1  # the re-run asked for exactly the first run's window
    assert (contacts.rows_inserted, contacts_again.rows_inserted) == (5, 0)
    assert query(warehouse, "select count(*) from raw_crm.contacts") == [(5,)]


def test_rerun_of_an_interval_whose_files_left_the_export_is_refused_and_keeps_its_rows(
    warehouse: WarehouseConfig, tmp_path: Path
) -> None:
    write_events(tmp_path / "a.jsonl", "a", 30)
    write_events(tmp_path / "b.jsonl", "b", 20)
    jobs.load_web_events(warehouse, tmp_path, interval=DAY1)
    (tmp_path / "a.jsonl").unlink()  # e.g. the bucket's retention rule removed it
    with pytest.raises(FileNotFoundError, match=r"a\.jsonl.*rows are kept"):
        jobs.load_web_events(warehouse, tmp_path, interval=DAY1)
    assert query(warehouse, "select count(*) from raw_analytics.web_events") == [(50,)]
    assert query(
        warehouse,
        "select status, count(*) from lead_scoring_ops.load_batches group by 1 order by 1",
    ) == [("committed", 1)]  # the refused re-run started no batch


KILLED_LOAD = """
import json, sys
from datetime import datetime
from lead_scoring.config import WarehouseConfig
from lead_scoring.extract import jobs
from lead_scoring.load.batch import Interval
config = WarehouseConfig(**json.loads(sys.argv[1]))
interval = Interval(datetime.fromisoformat(sys.argv[3]), datetime.fromisoformat(sys.argv[4]))
jobs.load_web_events(config, sys.argv[2], interval=interval)
"""


def test_a_killed_load_leaves_the_previous_state_and_the_next_run_recovers(
    warehouse: WarehouseConfig, tmp_path: Path
) -> None:
    write_events(tmp_path / "a.jsonl", "a", 50)
    jobs.load_web_events(warehouse, tmp_path, interval=DAY1)
    mark = watermark(warehouse, "segment.web_events")
    write_events(tmp_path / "big.jsonl", "big", 400_000)

    process = subprocess.Popen(
        [
            sys.executable, "-c", KILLED_LOAD, json.dumps(asdict(warehouse)), str(tmp_path),
            DAY2.start.isoformat(), DAY2.end.isoformat(),
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "plugins")},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        running = query(
            warehouse,
            "select count(*) from lead_scoring_ops.load_batches where status = 'running'",
        )[0][0]
        if running:
            break
        assert process.poll() is None, "the load ended before it could be killed"
        time.sleep(0.05)
    time.sleep(0.5)  # well inside the COPY of 400,000 lines
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    assert query(
        warehouse, "select status from lead_scoring_ops.load_batches order by started_at"
    ) == [
        ("committed",),
        ("running",),  # what the killed process left: nothing of it committed
    ]
    assert query(warehouse, "select count(*) from raw_analytics.web_events") == [(50,)]
    assert query(warehouse, "select path from lead_scoring_ops.loaded_files") == [("a.jsonl",)]
    assert watermark(warehouse, "segment.web_events") == mark

    recovered = jobs.load_web_events(warehouse, tmp_path, interval=DAY2)
    assert recovered.rows_inserted == 400_000
    statuses = query(
        warehouse, "select status, error from lead_scoring_ops.load_batches order by started_at"
    )
    assert [s[0] for s in statuses] == ["committed", "failed", "committed"]
    assert "abandoned" in statuses[1][1]
    assert query(warehouse, "select count(*) from raw_analytics.web_events") == [(400_050,)]


def test_unreachable_location_and_bad_format_are_clear_errors(
    warehouse: WarehouseConfig, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        jobs.load_web_events(warehouse, tmp_path / "missing")
    with pytest.raises(ValueError, match="segment, ga4"):
        jobs.load_web_events(warehouse, tmp_path, fmt="csv")
