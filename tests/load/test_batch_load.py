"""Bulk loads against a real PostgreSQL: idempotent, versioned, quarantined, all-or-nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lead_scoring.config import WarehouseConfig
from lead_scoring.extract.hubspot import contact_rows
from lead_scoring.extract.segment import web_event_rows
from lead_scoring.load import CONTACTS, WEB_EVENTS, load_batch

pytestmark = pytest.mark.integration


def contact(
    contact_id: str, title: str, updated: str, touched: str | None = None
) -> dict[str, Any]:
    return {
        "id": contact_id,
        "properties": {
            "email": f"{contact_id}@x.com",
            "jobtitle": title,
            "lastmodifieddate": touched or updated,
        },
        "createdAt": "2026-01-01T00:00:00.000Z",
        "updatedAt": touched or updated,
        "archived": False,
    }


def rows(conn: psycopg.Connection[Any], sql: str) -> list[tuple[Any, ...]]:
    return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def test_contacts_reload_adds_only_real_changes(warehouse: WarehouseConfig) -> None:
    first = [
        contact("1", "VP", "2026-01-02T00:00:00Z"),
        contact("2", "CEO", "2026-01-02T00:00:00Z"),
    ]
    result = load_batch(
        warehouse, table=CONTACTS, source="hubspot.contacts", records=contact_rows([first])
    )
    assert (result.rows_read, result.rows_inserted, result.rows_duplicate) == (2, 2, 0)

    # Same contacts again, one only "touched" (our own sync wrote to it), one really changed.
    second = [
        contact("1", "VP", "2026-01-02T00:00:00Z", touched="2026-01-05T00:00:00Z"),
        contact("2", "Founder", "2026-01-06T00:00:00Z"),
    ]
    again = load_batch(
        warehouse, table=CONTACTS, source="hubspot.contacts", records=contact_rows([second])
    )
    assert (again.rows_inserted, again.rows_duplicate) == (1, 1)
    with psycopg.connect(warehouse.conninfo()) as conn:
        versions = rows(
            conn,
            "select contact_id, properties->>'jobtitle' from raw_crm.contacts "
            "order by 1, updated_at",
        )
        batches = rows(
            conn,
            "select count(distinct batch_id), bool_and(loaded_at is not null) "
            "from raw_crm.contacts",
        )
    assert versions == [("1", "VP"), ("2", "CEO"), ("2", "Founder")]
    assert batches == [(2, True)]


def test_web_events_dedupe_on_message_id_and_quarantine_bad_lines(
    warehouse: WarehouseConfig, tmp_path: Path
) -> None:
    event = {
        "type": "page",
        "anonymousId": "a1",
        "messageId": "m1",
        "timestamp": "2026-01-01T00:00:00Z",
    }
    lines = [
        json.dumps(event),
        json.dumps({**event, "messageId": "m2"}),
        json.dumps(event),
        "{oops",
        json.dumps({**event, "type": "nope", "messageId": "m3"}),
    ]
    (tmp_path / "2026-01-01.jsonl").write_text("\n".join(lines) + "\n")

    first = load_batch(
        warehouse, table=WEB_EVENTS, source="segment.web_events", records=web_event_rows(tmp_path)
    )
    assert (first.rows_read, first.rows_inserted, first.rows_quarantined) == (5, 2, 2)
    assert first.rows_duplicate == 1  # the replayed m1 inside the same file
    assert dict(first.quarantine_reasons) == {"malformed_json": 1, "unknown_type": 1}

    second = load_batch(
        warehouse, table=WEB_EVENTS, source="segment.web_events", records=web_event_rows(tmp_path)
    )
    assert (second.rows_inserted, second.rows_duplicate) == (0, 3)
    with psycopg.connect(warehouse.conninfo()) as conn:
        assert rows(conn, "select count(*) from raw_analytics.web_events") == [(2,)]
        quarantined = rows(
            conn,
            "select reason, raw_payload, source_file, source_line "
            "from raw_analytics.quarantine order by source_line",
        )
        statuses = rows(
            conn,
            "select status, rows_quarantined from lead_scoring_ops.load_batches "
            "order by started_at",
        )
    # Re-loading the same file does not duplicate quarantine rows either.
    assert quarantined == [
        ("malformed_json", "{oops", "2026-01-01.jsonl", 4),
        ("unknown_type", lines[4], "2026-01-01.jsonl", 5),
    ]
    assert statuses == [("committed", 2), ("committed", 2)]


def test_a_load_that_dies_midway_leaves_the_previous_state(warehouse: WarehouseConfig) -> None:
    load_batch(
        warehouse,
        table=CONTACTS,
        source="hubspot.contacts",
        records=contact_rows([[contact("1", "VP", "2026-01-02T00:00:00Z")]]),
    )

    def pages_then_crash() -> Iterator[list[dict[str, Any]]]:
        yield [contact(str(i), "CEO", "2026-02-01T00:00:00Z") for i in range(2, 500)]
        raise ConnectionError("portal went away mid-extract")

    with pytest.raises(ConnectionError):
        load_batch(
            warehouse,
            table=CONTACTS,
            source="hubspot.contacts",
            records=contact_rows(pages_then_crash()),
        )
    with psycopg.connect(warehouse.conninfo()) as conn:
        assert rows(conn, "select contact_id from raw_crm.contacts") == [("1",)]
        batches = rows(
            conn, "select status, error from lead_scoring_ops.load_batches order by started_at"
        )
    assert batches[0] == ("committed", None)
    assert batches[1][0] == "failed"
    assert "portal went away" in batches[1][1]


def test_load_time_and_batch_id_are_the_batchs(warehouse: WarehouseConfig) -> None:
    before = datetime.now(UTC)
    result = load_batch(
        warehouse,
        table=CONTACTS,
        source="hubspot.contacts",
        records=contact_rows([[contact("9", "VP", "2026-01-02T00:00:00Z")]]),
    )
    with psycopg.connect(warehouse.conninfo()) as conn:
        batch_id, loaded_at = rows(conn, "select batch_id::text, loaded_at from raw_crm.contacts")[
            0
        ]
    assert batch_id == result.batch_id
    assert loaded_at >= before
