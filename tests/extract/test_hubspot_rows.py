"""Contact versions are detected by content, not by HubSpot's last-modified stamp."""

from __future__ import annotations

from datetime import UTC, datetime

from lead_scoring.extract.hubspot import contact_row, email_event_row, parse_timestamp
from lead_scoring.load.batch import Rejected

RECORD = {
    "id": "512",
    "properties": {
        "email": "a@x.com",
        "jobtitle": "VP Sales",
        "lastmodifieddate": "2026-01-01T00:00:00.000Z",
    },
    "createdAt": "2025-12-01T00:00:00.000Z",
    "updatedAt": "2026-01-01T00:00:00.000Z",
    "archived": False,
}


def test_hash_ignores_the_last_modified_stamp_but_not_real_changes() -> None:
    base = contact_row(RECORD)
    touched = contact_row(
        {
            **RECORD,
            "properties": {**RECORD["properties"], "lastmodifieddate": "2026-02-01T00:00:00.000Z"},
        }
    )
    changed = contact_row({**RECORD, "properties": {**RECORD["properties"], "jobtitle": "CEO"}})
    assert not isinstance(base, Rejected)
    assert not isinstance(touched, Rejected)
    assert not isinstance(changed, Rejected)
    assert base[3] == touched[3]
    assert base[3] != changed[3]


def test_malformed_contacts_are_rejected() -> None:
    no_id = contact_row({k: v for k, v in RECORD.items() if k != "id"})
    bad_time = contact_row({**RECORD, "updatedAt": "soon"})
    assert isinstance(no_id, Rejected)
    assert no_id.reason == "malformed_record"
    assert isinstance(bad_time, Rejected)
    assert bad_time.reason == "bad_timestamp"


def test_email_events_use_epoch_millis_and_lowercase_recipients() -> None:
    row = email_event_row(
        {"id": "e1", "type": "OPEN", "recipient": "A@X.com", "created": 1717200000000}
    )
    assert not isinstance(row, Rejected)
    assert row[:4] == ("e1", "OPEN", "a@x.com", datetime(2024, 6, 1, tzinfo=UTC))
    assert isinstance(email_event_row({"type": "OPEN", "created": 1}), Rejected)


def test_parse_timestamp_forms() -> None:
    assert parse_timestamp("2024-06-01T00:00:00Z") == datetime(2024, 6, 1, tzinfo=UTC)
    assert parse_timestamp("2024-06-01T02:00:00+02:00") == datetime(2024, 6, 1, tzinfo=UTC)
    assert parse_timestamp(1717200000000) == datetime(2024, 6, 1, tzinfo=UTC)
