"""One bad record never blocks the rest (issue 20, defects 3, 4 and 8): each poisoned kind of
web line and CRM record goes to quarantine with its reason and payload, the rest of its file or
page loads, and the watermark moves so the next run does not fail on the same record. Each
case goes through the DAG's own task function, against a real PostgreSQL and real HTTP to the
CRM sandbox."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lead_scoring import tasks
from lead_scoring.config import CrmConfig, WarehouseConfig
from lead_scoring.sandbox import Sandbox

pytestmark = pytest.mark.integration

GOOD_WEB = {
    "type": "page",
    "anonymousId": "anon-1",
    "messageId": "good-0",
    "timestamp": "2026-05-31T10:00:00Z",
    "context": {"page": {"path": "/pricing"}},
}

# What a user's export may hold, each as the exact line text, with the reason it must get.
POISONED_WEB = {
    "lone surrogate": (json.dumps({**GOOD_WEB, "name": "\ud83d"}), "bad_encoding"),
    "type is a list": (json.dumps({**GOOD_WEB, "type": ["page"]}), "unknown_type"),
    "timestamp Infinity": (json.dumps({**GOOD_WEB, "timestamp": float("inf")}), "malformed_json"),
    "timestamp 1e30": (json.dumps({**GOOD_WEB, "timestamp": 1e30}), "bad_timestamp"),
    "year 1, east of UTC": (
        json.dumps({**GOOD_WEB, "timestamp": "0001-01-01T00:00:00+01:00"}),
        "bad_timestamp",
    ),
    "userId is an object": (json.dumps({**GOOD_WEB, "userId": {"id": 7}}), "invalid_identity"),
}


def connect_to(warehouse: WarehouseConfig, sandbox: Sandbox | None, monkeypatch: Any) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", warehouse.to_airflow_json())
    if sandbox is not None:
        monkeypatch.setenv(
            "AIRFLOW_CONN_CRM", CrmConfig(sandbox.url, sandbox.token).to_airflow_json()
        )


def quarantine(warehouse: WarehouseConfig, schema: str) -> list[tuple[str, str, str, str]]:
    with psycopg.connect(warehouse.conninfo()) as conn:
        return conn.execute(
            f"select source, reason, detail, raw_payload from {schema}.quarantine order by 1, 2"
        ).fetchall()


def test_each_poisoned_web_line_is_quarantined_and_the_rest_of_the_file_loads(
    warehouse: WarehouseConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect_to(warehouse, None, monkeypatch)
    lines = []
    for i, (text, _) in enumerate(POISONED_WEB.values()):
        lines += [json.dumps({**GOOD_WEB, "messageId": f"good-{i}"}), text]
    # an emoji written ASCII-only is a surrogate *pair*: a good line
    lines.append(json.dumps({**GOOD_WEB, "messageId": "emoji", "name": "launch \U0001f680"}))
    export = tmp_path / "export"
    export.mkdir()
    (export / "2026-05-31.jsonl").write_text("\n".join(lines) + "\n")

    loaded = tasks.load_web_events(run_id="manual__poisoned", path=str(export))

    expected = Counter(reason for _, reason in POISONED_WEB.values())
    assert loaded["quarantine_reasons"] == dict(expected)
    assert loaded["rows_inserted"] == len(POISONED_WEB) + 1
    kept = quarantine(warehouse, "raw_analytics")
    assert len(kept) == len(POISONED_WEB)
    # every line is kept as it came (lone surrogates as the escapes they were in the file)
    assert sorted(raw for *_, raw in kept) == sorted(text for text, _ in POISONED_WEB.values())
    details = {reason: detail for _, reason, detail, _ in kept}
    assert "name" in details["bad_encoding"]
    assert "Infinity" in details["malformed_json"]
    assert "userId" in details["invalid_identity"]
    with psycopg.connect(warehouse.conninfo()) as conn:
        emoji = conn.execute(
            "select raw::jsonb ->> 'name' from raw_analytics.web_events where message_id = 'emoji'"
        ).fetchone()
    assert emoji == ("launch \U0001f680",)


def test_each_poisoned_crm_record_is_quarantined_and_the_rest_of_the_page_loads(
    warehouse: WarehouseConfig, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect_to(warehouse, sandbox, monkeypatch)
    good = [
        {
            "properties": {"email": f"lead{i}@example.com", "jobtitle": "VP Sales"},
            "createdAt": "2026-01-01T00:00:00.000Z",
        }
        for i in range(40)
    ]
    sandbox.portal.seed_contacts(good)
    poisoned = {
        "lead0@example.com": ({"jobtitle": "VP\x00Sales"}, "nul_character", "jobtitle"),
        "lead1@example.com": ({"company": "Acme \ud83d"}, "bad_encoding", "company"),
        "lead2@example.com": ({"industry": ["Software", "Retail"]}, "malformed_record", "list"),
        "lead3@example.com": ({"city": {"name": "Paris"}}, "malformed_record", "object"),
        "lead4@example.com": (
            {"hs_lifecyclestage_customer_date": "2099-01-01T00:00:00.000Z"},
            "future_timestamp",
            "hs_lifecyclestage_customer_date",
        ),
    }
    for email, (properties, _, _) in poisoned.items():
        sandbox.portal.corrupt_contact(email, properties)
    events = [
        {"id": f"e{i}", "type": "OPEN", "recipient": f"lead{i}@example.com",
         "created": 1780000000000 + i}
        for i in range(10)
    ] + [
        {"id": "nul", "type": "OPEN", "recipient": "lead\x00@example.com",
         "created": 1780000000100},
        {"id": "surrogate", "type": "CLICK", "recipient": "\udc00@example.com",
         "created": 1780000000200},
    ]  # fmt: skip
    sandbox.portal.add_email_events(events)

    contacts = tasks.extract_contacts(run_id="manual__poisoned")
    emails = tasks.extract_email_events(run_id="manual__poisoned")

    assert contacts["rows_inserted"] == len(good) - len(poisoned)
    assert contacts["quarantine_reasons"] == dict(Counter(r for _, r, _ in poisoned.values()))
    assert emails["rows_inserted"] == 10
    assert emails["quarantine_reasons"] == {"nul_character": 1, "bad_encoding": 1}
    kept = quarantine(warehouse, "raw_crm")
    by_source = Counter(source for source, *_ in kept)
    assert by_source["hubspot.contacts"] == len(poisoned)
    assert by_source["hubspot.email_events"] == 2
    # the detail names the property or field, and the payload is kept (escaped where needed)
    details = [detail for source, _, detail, _ in kept if source == "hubspot.contacts"]
    for _, _, named in poisoned.values():
        assert any(named in detail for detail in details), (named, details)
    payloads = " ".join(raw for *_, raw in kept)
    for escape in ("\\u0000", "\\ud83d", "\\udc00"):
        assert escape in payloads

    # The watermarks moved: the next run reads only what changed, and does not fail again.
    with psycopg.connect(warehouse.conninfo()) as conn:
        marks = dict(conn.execute("select source, watermark from lead_scoring_ops.extract_state"))
    assert {"hubspot.contacts", "hubspot.email_events"} <= set(marks)
    again = tasks.extract_contacts(run_id="manual__next")
    assert again["rows_inserted"] == 0
    assert tasks.extract_email_events(run_id="manual__next")["rows_inserted"] == 0
