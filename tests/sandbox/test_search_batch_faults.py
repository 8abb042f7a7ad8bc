"""Search, batch read/upsert/create and fault injection follow the wire contract (§2-§4, §9-§10)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lead_scoring.sandbox import Faults, Sandbox
from lead_scoring.sandbox.admin import SandboxAdmin

pytestmark = pytest.mark.integration

SEARCH = "/crm/v3/objects/contacts/search"


def http(sandbox: Sandbox) -> httpx.Client:
    return httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {sandbox.token}"})


def seed(sandbox: Sandbox, contacts: list[dict[str, Any]]) -> None:
    with SandboxAdmin(sandbox.url, sandbox.token) as admin:
        admin.seed_contacts(contacts)


def person(i: int, title: str, updated: str, **extra: str) -> dict[str, Any]:
    return {
        "properties": {"email": f"p{i}@example.com", "jobtitle": title, **extra},
        "createdAt": "2026-01-01T00:00:00.000Z",
        "updatedAt": updated,
    }


@pytest.fixture
def portal(sandbox: Sandbox) -> Sandbox:
    seed(
        sandbox,
        [
            person(1, "VP Sales", "2026-03-01T00:00:00.000Z", industry="Software"),
            person(2, "Student", "2026-03-02T00:00:00.000Z", industry="Education"),
            person(3, "VP Marketing", "2026-03-03T00:00:00.000Z", industry="Software"),
            person(4, "CEO", "2026-03-04T00:00:00.000Z"),
        ],
    )
    return sandbox


def ids(body: dict[str, Any]) -> list[str]:
    return [r["id"] for r in body["results"]]


def test_search_filters_and_or_sorts_total_and_string_values(portal: Sandbox) -> None:
    march_2 = "1772409600000"  # 2026-03-02T00:00:00Z in epoch millis, as connectors send it
    with http(portal) as client:
        window = client.post(
            SEARCH,
            json={
                "filterGroups": [
                    {"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE",
                                  "value": march_2}]}
                ],
                "sorts": [{"propertyName": "lastmodifieddate", "direction": "DESCENDING"}],
                "properties": ["email", "jobtitle"],
                "limit": 2,
            },
        ).json()  # fmt: skip
        assert window["total"] == 3
        assert ids(window) == ["4", "3"]
        assert window["paging"]["next"]["after"] == "2"
        assert window["results"][0]["properties"] == {"email": "p4@example.com", "jobtitle": "CEO"}
        rest = client.post(
            SEARCH,
            json={
                "filterGroups": [
                    {"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE",
                                  "value": march_2}]}
                ],
                "sorts": ["-lastmodifieddate"],  # the SDK's string form
                "limit": 2,
                "after": "2",
            },
        ).json()  # fmt: skip
        assert ids(rest) == ["2"]
        assert "paging" not in rest

        either = client.post(
            SEARCH,
            json={
                "filterGroups": [
                    {
                        "filters": [
                            {"propertyName": "industry", "operator": "EQ", "value": "software"},
                            {"propertyName": "jobtitle", "operator": "CONTAINS_TOKEN",
                             "value": "market*"},
                        ]
                    },
                    {"filters": [{"propertyName": "industry", "operator": "NOT_HAS_PROPERTY"}]},
                ]
            },
        ).json()  # fmt: skip
        assert sorted(ids(either)) == ["3", "4"]  # (Software AND market*) OR no industry

        listed = client.post(
            SEARCH,
            json={
                "filterGroups": [
                    {"filters": [
                        {"propertyName": "hs_object_id", "operator": "IN", "values": ["1", "2"]},
                        {"propertyName": "hs_object_id", "operator": "BETWEEN", "value": "2",
                         "highValue": "9"},
                    ]}
                ]
            },
        ).json()  # fmt: skip
        assert ids(listed) == ["2"]
        values = listed["results"][0]["properties"]
        assert values["hs_object_id"] == "2"  # numbers as strings; unset ones are null
        assert all(isinstance(v, str) for v in values.values() if v is not None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"limit": 201}, "limit"),
        ({"after": "9900", "limit": 200}, "10000"),
        ({"after": "10000", "limit": 1}, "10000"),
        ({"sorts": ["email", "createdate"]}, "one sort"),
        ({"filterGroups": [{"filters": []}] * 6}, "filterGroups"),
        (
            {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}]
                              * 11}]},
            "filters",
        ),
        ({"filterGroups": [{"filters": [{"propertyName": "nope", "operator": "EQ",
                                         "value": "1"}]}]}, "does not exist"),
        ({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "LIKE",
                                         "value": "1"}]}]}, "operator"),
    ],
)  # fmt: skip
def test_search_refuses_what_hubspot_refuses(
    portal: Sandbox, body: dict[str, Any], message: str
) -> None:
    with http(portal) as client:
        response = client.post(SEARCH, json=body)
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"
    assert message in response.json()["message"]


def test_search_has_its_own_per_second_limit(portal: Sandbox) -> None:
    with http(portal) as client:
        answers = [client.post(SEARCH, json={}) for _ in range(8)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, "more than 5 searches in a second must meet the search limit"
    assert limited[0].json()["policyName"] == "SECONDLY"
    assert limited[0].json()["errorType"] == "RATE_LIMIT"


def test_batch_read_200_and_207_with_missing_ids(portal: Sandbox) -> None:
    with http(portal) as client:
        ok = client.post(
            "/crm/v3/objects/contacts/batch/read",
            json={"properties": ["email"], "propertiesWithHistory": [], "inputs": [{"id": "1"}]},
        )
        assert ok.status_code == 200
        assert ok.json()["results"][0]["properties"]["email"] == "p1@example.com"
        by_email = client.post(
            "/crm/v3/objects/contacts/batch/read",
            json={
                "properties": ["jobtitle"],
                "propertiesWithHistory": [],
                "idProperty": "email",
                "inputs": [{"id": "p2@example.com"}, {"id": "ghost@example.com"}],
            },
        )
        too_many = client.post(
            "/crm/v3/objects/contacts/batch/read",
            json={"properties": [], "inputs": [{"id": str(i)} for i in range(101)]},
        )
    assert by_email.status_code == 207
    body = by_email.json()
    assert body["numErrors"] == 1
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert body["errors"][0]["context"]["ids"] == ["ghost@example.com"]
    assert [r["properties"]["jobtitle"] for r in body["results"]] == ["Student"]
    assert too_many.status_code == 400


def test_batch_upsert_creates_and_updates_by_email_and_create_conflicts(portal: Sandbox) -> None:
    with http(portal) as client:
        upsert = client.post(
            "/crm/v3/objects/contacts/batch/upsert",
            json={
                "inputs": [
                    {"idProperty": "email", "id": "p1@example.com",
                     "properties": {"jobtitle": "SVP Sales"}},
                    {"idProperty": "email", "id": "new@example.com",
                     "properties": {"firstname": "Nova"}},
                ]
            },
        )  # fmt: skip
        assert upsert.status_code == 200
        assert [r["new"] for r in upsert.json()["results"]] == [False, True]
        created = client.post(
            "/crm/v3/objects/contacts/batch/create",
            json={"inputs": [{"properties": {"email": "fresh@example.com"}}]},
        )
        conflict = client.post(
            "/crm/v3/objects/contacts/batch/create",
            json={"inputs": [{"properties": {"email": "P1@example.com"}}]},
        )
        check = client.post(
            "/crm/v3/objects/contacts/batch/read",
            json={"properties": ["jobtitle"], "inputs": [{"id": "1"}]},
        ).json()
    assert created.status_code == 201
    assert conflict.status_code == 409
    assert conflict.json()["category"] == "CONFLICT"
    assert "Existing ID: 1" in conflict.json()["message"]
    assert check["results"][0]["properties"]["jobtitle"] == "SVP Sales"


def test_faults_are_injected_as_configured_and_adjustable_at_runtime() -> None:
    faults = Faults(rate_429=0.3, rate_5xx=0.2, drop_rate=0.1, seed=3)
    with Sandbox(port=0, token="t", faults=faults) as sandbox, http(sandbox) as client:
        statuses: list[int | str] = []
        for _ in range(200):
            try:
                statuses.append(client.get("/crm/v3/objects/contacts").status_code)
            except httpx.RemoteProtocolError:
                statuses.append("dropped")
        with SandboxAdmin(sandbox.url, "t") as admin:
            assert admin.ping()  # the sandbox's own routes are never faulted
        off = {"rate_429": 0, "rate_5xx": 0, "drop_rate": 0}
        assert client.post("/_sandbox/faults", json=off).status_code == 200
        after = [client.get("/crm/v3/objects/contacts").status_code for _ in range(20)]
        bad = client.post("/_sandbox/faults", json={"rate_429": 1.5})
        injected = client.get("/_sandbox/faults").json()["injected"]
    count = {k: statuses.count(k) for k in (200, 429, "dropped")}
    count[500] = sum(statuses.count(s) for s in (500, 502, 503))
    assert 40 <= count[429] <= 80, count
    assert 20 <= count[500] <= 60, count
    assert 5 <= count["dropped"] <= 35, count
    assert count[200] == 200 - count[429] - count[500] - count["dropped"]
    assert injected == {"429": count[429], "5xx": count[500], "drop": count["dropped"]}
    assert after == [200] * 20
    assert bad.status_code == 400


def test_official_sdk_searches_the_sandbox(portal: Sandbox) -> None:
    from hubspot import HubSpot
    from hubspot.crm.contacts import Filter, FilterGroup, PublicObjectSearchRequest

    client = HubSpot(access_token=portal.token, host=portal.url)
    request = PublicObjectSearchRequest(
        filter_groups=[
            FilterGroup(filters=[Filter(property_name="industry", operator="EQ", value="Software")])
        ],
        sorts=["hs_object_id"],
        properties=["email"],
        limit=10,
    )
    page = client.crm.contacts.search_api.do_search(public_object_search_request=request)
    assert page.total == 2
    assert [r.properties["email"] for r in page.results] == ["p1@example.com", "p3@example.com"]
