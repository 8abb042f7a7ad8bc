"""The HubSpot client pages through everything once and rides out rate limits, over real HTTP."""

from __future__ import annotations

import pytest

from lead_scoring.crm import HubSpotClient, HubSpotError
from lead_scoring.sandbox import Faults, Sandbox
from tests.helpers import seed_contacts

pytestmark = pytest.mark.integration


def test_iterates_every_contact_once(sandbox: Sandbox) -> None:
    seed_contacts(sandbox, 345)
    with HubSpotClient(sandbox.url, sandbox.token) as client:
        pages = list(client.iter_contact_pages(["email"]))
    ids = [r["id"] for page in pages for r in page]
    assert [len(p) for p in pages] == [100, 100, 100, 45]
    assert len(ids) == len(set(ids)) == 345
    assert client.rate_limit.max == 190  # headers were read


def test_survives_429s_without_loss_or_duplicates() -> None:
    # Another client of the same token used the window up: 30% of calls meet a 429.
    faults = Faults(rate_429=0.3, seed=5)
    with Sandbox(port=0, token="t", faults=faults) as sandbox:
        seed_contacts(sandbox, 1200)
        with HubSpotClient(
            sandbox.url, sandbox.token, backoff_base=0.05, backoff_cap=0.5
        ) as client:
            ids = [r["id"] for page in client.iter_contact_pages(["email"]) for r in page]
    assert len(ids) == len(set(ids)) == 1200
    assert client.stats.statuses[429] > 0
    assert client.stats.retries == client.stats.statuses[429]


def test_paces_itself_inside_the_announced_window() -> None:
    # 4 calls per 300 ms: paging 12 pages would meet the limit without the client's own pacing.
    with Sandbox(port=0, token="t", rate_limit=4, rate_interval_ms=300) as sandbox:
        seed_contacts(sandbox, 1200)
        with HubSpotClient(sandbox.url, sandbox.token) as client:
            ids = [r["id"] for page in client.iter_contact_pages(["email"]) for r in page]
    assert len(ids) == len(set(ids)) == 1200
    assert client.stats.statuses[429] == 0
    assert client.limiter.waited_seconds > 0


def test_gives_up_after_bounded_attempts() -> None:
    # Another client of the token holds the window: every call meets a 429.
    limited = Sandbox(port=0, token="t", faults=Faults(rate_429=1.0))
    client = HubSpotClient(limited.url, limited.token, max_attempts=3, sleep=lambda _: None)
    with limited, client, pytest.raises(HubSpotError, match="still failing after 3 attempts"):
        client.get_contact_property("email")
    assert client.stats.requests == 3


def test_client_errors_are_not_retried(sandbox: Sandbox) -> None:
    client = HubSpotClient(sandbox.url, "wrong-token", sleep=lambda _: None)
    with client, pytest.raises(HubSpotError) as error:
        list(client.iter_contact_pages(["email"]))
    assert error.value.status == 401
    assert error.value.category == "INVALID_AUTHENTICATION"
    assert client.stats.requests == 1


def test_batch_update_reports_missing_contacts(sandbox: Sandbox) -> None:
    seed_contacts(sandbox, 2)
    with HubSpotClient(sandbox.url, sandbox.token) as client:
        result = client.batch_update_contacts(
            [
                {"id": "1", "properties": {"firstname": "A"}},
                {"id": "77", "properties": {"firstname": "B"}},
            ]
        )
        assert result.status_code == 207
        assert result.failed_ids() == {"77": "OBJECT_NOT_FOUND"}
        with pytest.raises(ValueError, match="at most 100"):
            client.batch_update_contacts([{"id": str(i), "properties": {}} for i in range(101)])


def test_token_never_appears_in_errors(sandbox: Sandbox) -> None:
    secret = "fake-private-app-token-0042"
    client = HubSpotClient(sandbox.url, secret, sleep=lambda _: None)
    with client, pytest.raises(HubSpotError) as error:
        client.get_contact_property("email")
    assert secret not in str(error.value)
    assert secret not in repr(error.value.body)


def test_timeouts_are_retried_then_reported() -> None:
    # Every answer takes 400 ms; the client waits 100 ms: each attempt times out.
    slow = Sandbox(port=0, token="t", faults=Faults(latency_ms=400))
    client = HubSpotClient(slow.url, slow.token, timeout=0.1, max_attempts=3, sleep=lambda _: None)
    with slow, client, pytest.raises(HubSpotError, match=r"after 3 attempts \(ReadTimeout"):
        client.get_contact_property("email")
    assert (client.stats.requests, client.stats.retries) == (3, 2)
