"""The sandbox answers as HubSpot does (shared/contracts/crm-wire-contract.md), over real HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lead_scoring.sandbox import Sandbox
from lead_scoring.sandbox.admin import SandboxAdmin
from tests.helpers import seed_contacts

pytestmark = pytest.mark.integration


def http(sandbox: Sandbox, token: str | None = "default") -> httpx.Client:
    headers = (
        {}
        if token is None
        else {"Authorization": f"Bearer {sandbox.token if token == 'default' else token}"}
    )
    return httpx.Client(base_url=sandbox.url, headers=headers)


def test_missing_or_wrong_token_gets_401_body(sandbox: Sandbox) -> None:
    for token in (None, "wrong"):
        with http(sandbox, token) as client:
            response = client.get("/crm/v3/objects/contacts")
        assert response.status_code == 401
        body = response.json()
        assert body["status"] == "error"
        assert body["category"] == "INVALID_AUTHENTICATION"
        assert body["correlationId"]


def test_list_pages_with_opaque_cursor_and_no_paging_on_last_page(sandbox: Sandbox) -> None:
    seed_contacts(sandbox, 250)
    seen: list[str] = []
    after = None
    pages = 0
    with http(sandbox) as client:
        while True:
            params: dict[str, Any] = {"limit": 100, "properties": "email,jobtitle,nosuchproperty"}
            if after:
                params["after"] = after
            body = client.get("/crm/v3/objects/contacts", params=params).json()
            pages += 1
            seen += [r["id"] for r in body["results"]]
            record = body["results"][0]
            assert set(record) >= {"id", "properties", "createdAt", "updatedAt", "archived"}
            assert (
                record["properties"]["nosuchproperty"] is None
            )  # unknown names: ignored, not an error
            assert all(isinstance(v, str) for v in record["properties"].values() if v is not None)
            if "paging" not in body:
                break
            after = body["paging"]["next"]["after"]
            assert not after.isdigit()  # opaque, not an offset
    assert pages == 3
    assert len(seen) == len(set(seen)) == 250


@pytest.mark.parametrize("limit", [0, 101])
def test_list_limit_out_of_range_is_400(sandbox: Sandbox, limit: int) -> None:
    with http(sandbox) as client:
        response = client.get("/crm/v3/objects/contacts", params={"limit": limit})
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"


def test_batch_update_200_207_and_400(sandbox: Sandbox) -> None:
    seed_contacts(sandbox, 3)
    with http(sandbox) as client:
        ok = client.post(
            "/crm/v3/objects/contacts/batch/update",
            json={"inputs": [{"id": "1", "properties": {"firstname": "Ada"}}]},
        )
        assert ok.status_code == 200
        assert ok.json()["status"] == "COMPLETE"
        assert ok.json()["results"][0]["properties"]["firstname"] == "Ada"

        partial = client.post(
            "/crm/v3/objects/contacts/batch/update",
            json={
                "inputs": [
                    {"id": "2", "properties": {"firstname": "Bo"}},
                    {"id": "999", "properties": {"firstname": "Ghost"}},
                    {
                        "id": "lead2@example.com",
                        "idProperty": "email",
                        "properties": {"lastname": "Byron"},
                    },
                ]
            },
        )
        assert partial.status_code == 207
        body = partial.json()
        assert body["numErrors"] == 1
        assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND"
        assert body["errors"][0]["context"]["ids"] == ["999"]
        assert len(body["results"]) == 2

        too_many = client.post(
            "/crm/v3/objects/contacts/batch/update",
            json={"inputs": [{"id": str(i), "properties": {"firstname": "x"}} for i in range(101)]},
        )
        assert too_many.status_code == 400

        unknown = client.post(
            "/crm/v3/objects/contacts/batch/update",
            json={"inputs": [{"id": "1", "properties": {"dw_lead_score": "10"}}]},
        )
        assert unknown.status_code == 400
        assert "does not exist" in unknown.json()["message"]


def test_property_get_404_create_201_then_409_and_number_validation(sandbox: Sandbox) -> None:
    seed_contacts(sandbox, 1)
    definition = {
        "name": "dw_lead_score",
        "label": "Score",
        "type": "number",
        "fieldType": "number",
        "groupName": "contactinformation",
    }
    with http(sandbox) as client:
        assert client.get("/crm/v3/properties/contacts/dw_lead_score").status_code == 404
        created = client.post("/crm/v3/properties/contacts", json=definition)
        assert created.status_code == 201
        assert created.json()["hubspotDefined"] is False
        assert client.post("/crm/v3/properties/contacts", json=definition).status_code == 409
        assert client.get("/crm/v3/properties/contacts/dw_lead_score").json()["type"] == "number"
        bad_number = client.post(
            "/crm/v3/objects/contacts/batch/update",
            json={"inputs": [{"id": "1", "properties": {"dw_lead_score": "high"}}]},
        )
        assert bad_number.status_code == 400
        number = client.post(
            "/crm/v3/objects/contacts/batch/update",
            json={"inputs": [{"id": "1", "properties": {"dw_lead_score": 87}}]},
        )
        assert (
            number.json()["results"][0]["properties"]["dw_lead_score"] == "87"
        )  # stored as a string


def test_email_events_page_with_has_more_and_offset(sandbox: Sandbox) -> None:
    events = [
        {
            "id": f"e{i:03d}",
            "created": 1_700_000_000_000 + i,
            "type": "OPEN",
            "recipient": "a@x.com",
        }
        for i in range(25)
    ]
    with SandboxAdmin(sandbox.url, sandbox.token) as admin:
        assert admin.seed_email_events(events) == 25
        assert admin.seed_email_events(events) == 0  # idempotent by event id
    got: list[str] = []
    offset = None
    with http(sandbox) as client:
        while True:
            params: dict[str, Any] = {
                "startTimestamp": 1_700_000_000_000,
                "endTimestamp": 1_700_000_000_019,
                "limit": 10,
            }
            if offset:
                params["offset"] = offset
            body = client.get("/email/public/v1/events", params=params).json()
            got += [e["id"] for e in body["events"]]
            if not body["hasMore"]:
                break
            offset = body["offset"]
    assert got == [f"e{i:03d}" for i in range(20)]  # the window's 20, in order, once each


def test_rate_limit_headers_and_documented_429_body() -> None:
    with Sandbox(port=0, token="t", rate_limit=3) as sandbox, http(sandbox) as client:
        answers = [client.get("/crm/v3/objects/contacts") for _ in range(4)]
    first = answers[0]
    assert first.headers["X-HubSpot-RateLimit-Max"] == "3"
    assert first.headers["X-HubSpot-RateLimit-Remaining"] == "2"
    assert first.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert "X-HubSpot-RateLimit-Daily-Remaining" in first.headers
    limited = answers[3]
    assert limited.status_code == 429
    body = limited.json()
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."


def test_portal_survives_a_restart(tmp_path: pytest.TempPathFactory) -> None:
    db = tmp_path / "portal.db"  # type: ignore[operator]
    with Sandbox(port=0, token="t", db_path=db) as first:
        seed_contacts(first, 5)
    with Sandbox(port=0, token="t", db_path=db) as second, http(second) as client:
        assert (
            len(client.get("/crm/v3/objects/contacts", params={"limit": 100}).json()["results"])
            == 5
        )


def test_official_hubspot_sdk_reads_a_page_of_contacts(sandbox: Sandbox) -> None:
    """The same client code works against real HubSpot and the sandbox (contract §0)."""
    from hubspot import HubSpot

    seed_contacts(sandbox, 12)
    client = HubSpot(access_token=sandbox.token, host=sandbox.url)
    page = client.crm.contacts.basic_api.get_page(limit=10, properties=["email", "jobtitle"])
    assert len(page.results) == 10
    assert page.results[0].properties["email"] == "lead0@example.com"
    assert page.paging.next.after
    rest = client.crm.contacts.basic_api.get_page(
        limit=10, after=page.paging.next.after, properties=["email"]
    )
    assert len(rest.results) == 2
    assert rest.paging is None


def test_property_history_newest_first_and_pages_of_50(sandbox: Sandbox) -> None:
    """propertiesWithHistory (contract §1): the official SDK parses the sandbox's entries, a
    page with history holds at most 50 records, and a change adds an entry on top."""
    from hubspot import HubSpot

    seed_contacts(sandbox, 60)
    with http(sandbox) as raw:
        changed = raw.post(
            "/crm/v3/objects/contacts/batch/update",
            json={"inputs": [{"id": "1", "properties": {"jobtitle": "CMO"}}]},
        )
        assert changed.status_code == 200
    client = HubSpot(access_token=sandbox.token, host=sandbox.url)
    page = client.crm.contacts.basic_api.get_page(
        limit=100, properties=["jobtitle"], properties_with_history=["jobtitle"]
    )
    assert len(page.results) == 50
    first = next(r for r in page.results if r.id == "1")
    history = first.properties_with_history["jobtitle"]
    assert history[0].value == "CMO"
    assert len(history) == 2
    assert history[0].timestamp > history[1].timestamp
    assert history[0].source_type
