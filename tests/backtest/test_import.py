"""The import contract against the real embedded PostgreSQL: good rows land in the raw tables the
extractors fill, bad rows go to quarantine with their reason and payload, a re-import adds
nothing, and a folder that breaks the contract is refused with what to fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lead_scoring.backtest.contract import ContractError, import_dataset
from lead_scoring.config import WarehouseConfig
from lead_scoring.warehouse import connect

pytestmark = pytest.mark.integration


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text.strip() + "\n")


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    folder = tmp_path / "crm_export"
    _write(
        folder,
        "contacts.csv",
        """
lead_id,created_at,email,job_title,industry,attributes_known_at,education
L1,2026-01-05,ann@example.com,VP Sales,Software,,university.degree
L2,2026-01-06T10:00:00Z,,Student,Education,2026-03-01,
L3,not a date,bob@example.com,CEO,Retail,,
L4,2026-01-07,not-an-address,CEO,Retail,,
""",
    )
    _write(
        folder,
        "activities.csv",
        """
lead_id,occurred_at,activity_type,page_path
L1,2026-01-10T09:00:00Z,page_view,/pricing
L1,2026-01-10T09:05:00Z,demo_requested,/demo
L1,2026-01-11T08:00:00Z,email_open,
L1,2026-01-12T08:00:00Z,phone_call,
L2,2026-01-12T08:00:00Z,page_view,
L9,2026-01-12T08:00:00Z,page_view,/blog/x
L1,yesterday,page_view,/pricing
""",
    )
    _write(
        folder,
        "outcomes.csv",
        """
lead_id,stage,reached_at
L1,salesqualifiedlead,2026-02-01
L1,customer,2026-03-01
L2,lost,2026-02-15
L2,won,2026-02-16
""",
    )
    _write(folder, "backtest.json", '{"dataset": "crm_export", "outcome": "customer"}')
    return folder


def _quarantine(warehouse: WarehouseConfig, schema: str) -> list[tuple[str, str, str]]:
    with connect(warehouse) as conn:
        return conn.execute(
            f"select reason, detail, raw_payload from {schema}.quarantine order by reason, detail"
        ).fetchall()


def test_an_export_lands_in_the_raw_tables_and_its_bad_rows_in_quarantine(
    warehouse: WarehouseConfig, dataset: Path
) -> None:
    summary = import_dataset(warehouse, dataset)
    assert summary.custom_attributes == ["education"]
    assert summary.defaults["outcome"] == "customer"
    assert (summary.contacts.rows_inserted, summary.contacts.rows_quarantined) == (2, 3)
    with connect(warehouse) as conn:
        contacts = {
            row[0]: row[1:]
            for row in conn.execute(
                "select contact_id, updated_at::date::text, properties from raw_crm.contacts"
            )
        }
        web = conn.execute(
            "select event_type, coalesce(event_name, ''), user_id from raw_analytics.web_events "
            "order by event_timestamp, event_type"
        ).fetchall()
        email = conn.execute("select event_type, recipient from raw_crm.email_events").fetchall()
        identifies = conn.execute("select user_id, email from raw_analytics.identifies").fetchall()
    assert set(contacts) == {"L1", "L2"}
    first = contacts["L1"][1]
    assert first["education"] == "university.degree"
    assert first["jobtitle"] == "VP Sales"
    assert first["hs_lifecyclestage_salesqualifiedlead_date"].startswith("2026-02-01")
    assert first["lifecyclestage"] == "customer"
    # L2's attributes were recorded on 1 March: its only version is valid from then
    assert contacts["L2"][0] == "2026-03-01"
    assert contacts["L2"][1]["hs_lifecyclestage_other_date"].startswith("2026-02-15")
    assert contacts["L2"][1]["email"] == "lead-l2@import.invalid"
    assert ("track", "demo_requested", "import:L1") in web
    assert ("track", "phone_call", "import:L1") in web
    assert ("page", "", "import:L1") in web
    assert sorted(identifies) == [
        ("import:L1", "ann@example.com"),
        ("import:L2", "lead-l2@import.invalid"),
    ]
    assert email == [("OPEN", "ann@example.com")]

    crm = _quarantine(warehouse, "raw_crm")
    reasons = sorted(r[0] for r in crm)
    assert reasons == ["invalid_contact", "invalid_email", "invalid_outcome"]
    bad_date = next(r for r in crm if r[0] == "invalid_contact")
    assert "created_at 'not a date'" in bad_date[1]
    assert json.loads(bad_date[2])["row"]["lead_id"] == "L3"
    assert "won" in next(r[1] for r in crm if r[0] == "invalid_outcome")
    analytics = _quarantine(warehouse, "raw_analytics")
    details = sorted(r[1] for r in analytics)
    assert len(details) == 3
    assert any("page_view needs a page_path" in d for d in details)
    assert any("'L9' is not a contact" in d for d in details)
    assert any("occurred_at 'yesterday'" in d for d in details)

    again = import_dataset(warehouse, dataset)
    assert again.contacts.rows_inserted == 0
    assert again.web_events.rows_inserted == 0
    assert again.email_events.rows_inserted == 0


def test_a_folder_that_breaks_the_contract_is_refused_with_what_to_fix(
    warehouse: WarehouseConfig, dataset: Path
) -> None:
    (dataset / "outcomes.csv").unlink()
    with pytest.raises(ContractError, match=r"outcomes\.csv is missing"):
        import_dataset(warehouse, dataset)
    _write(dataset, "outcomes.csv", "lead_id,stage,reached_at")
    _write(dataset, "contacts.csv", "lead_id,email\nL1,a@b.co")
    with pytest.raises(ContractError, match=r"required column.*created_at"):
        import_dataset(warehouse, dataset)
    _write(dataset, "contacts.csv", "lead_id,created_at,Annual Revenue\nL1,2026-01-01,5")
    with pytest.raises(ContractError, match=r"'Annual Revenue' must be snake_case"):
        import_dataset(warehouse, dataset)
    # refused before anything was written: not even the landing zone exists
    with connect(warehouse) as conn:
        found = conn.execute(
            "select count(*) from information_schema.tables where table_schema = 'raw_crm'"
        ).fetchone()
    assert found == (0,)
