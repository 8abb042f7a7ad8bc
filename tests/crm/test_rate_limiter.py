"""The rate limiter keeps a shared client inside the portal tier's window, across threads."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from lead_scoring.config import ConfigError
from lead_scoring.crm import HubSpotClient
from lead_scoring.crm.ratelimit import RateLimiter, rate_limit_from_env
from lead_scoring.sandbox import Sandbox


class FakeTime:
    """A clock that moves only when somebody sleeps (thread-safe)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def test_never_more_calls_in_a_window_than_the_tier_allows() -> None:
    time = FakeTime()
    limiter = RateLimiter(10, 1.0, clock=time.clock, sleep=time.sleep)
    answered: list[float] = []
    for _ in range(35):
        slot = limiter.acquire()
        limiter.release(slot)
        answered.append(time.now)
    # Any 1-second window holds at most 10 answers, and the limiter does not wait longer
    # than it must: 35 calls need three full windows.
    assert max(sum(1 for t in answered if s <= t < s + 1.0) for s in answered) == 10
    assert 3.0 <= time.now < 3.1


def test_calls_in_flight_hold_their_slot() -> None:
    time = FakeTime()
    limiter = RateLimiter(3, 1.0, clock=time.clock, sleep=time.sleep)
    slots = [limiter.acquire() for _ in range(3)]
    assert limiter.in_flight == 3
    limiter.release(slots[0])
    # The window is full until the first answer is a whole interval old.
    limiter.acquire()
    assert time.now >= 1.0


def test_headers_lower_the_ceiling_but_never_raise_it() -> None:
    limiter = RateLimiter(190)
    limiter.observe(100, 99, 10_000)
    assert limiter.max_requests == 100
    limiter.observe(250, 249, 10_000)
    assert limiter.max_requests == 190
    unconfigured = RateLimiter(None)
    unconfigured.observe(250, 249, 1_000)
    assert (unconfigured.max_requests, unconfigured.interval) == (250, 1.0)


def test_a_window_used_up_by_other_clients_makes_calls_wait() -> None:
    time = FakeTime()
    limiter = RateLimiter(100, 10.0, clock=time.clock, sleep=time.sleep)
    limiter.release(limiter.acquire())
    limiter.observe(100, 0, 10_000)  # the server says nothing is left; we used one call
    limiter.acquire()
    assert time.now == pytest.approx(0.1)  # one slot's time


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 100), ("professional", 190), ("Enterprise", 190), ("api-add-on", 250), ("42", 42)],
)
def test_tier_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: int
) -> None:
    if value is None:
        monkeypatch.delenv("LEAD_SCORING_HUBSPOT_RATE_LIMIT", raising=False)
    else:
        monkeypatch.setenv("LEAD_SCORING_HUBSPOT_RATE_LIMIT", value)
    assert rate_limit_from_env() == expected


@pytest.mark.parametrize("value", ["gold", "0", "1001", "-5"])
def test_bad_tier_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("LEAD_SCORING_HUBSPOT_RATE_LIMIT", value)
    with pytest.raises(ConfigError, match="LEAD_SCORING_HUBSPOT_RATE_LIMIT"):
        rate_limit_from_env()


@pytest.mark.integration
def test_threads_sharing_a_client_never_meet_a_429_from_their_own_pacing() -> None:
    # 12 calls per 600 ms; 8 threads making 60 calls would overrun it many times unpaced.
    sandbox = Sandbox(port=0, token="t", rate_limit=12, rate_interval_ms=600)
    client = HubSpotClient(
        sandbox.url, sandbox.token, rate_limit=12, rate_interval=0.6, max_attempts=1
    )
    with sandbox, client, ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda _: client.get_contact_property("email"), range(60)))
    assert all(found)
    assert client.stats.requests == 60
    assert client.stats.statuses[429] == 0
    assert client.stats.statuses[200] == 60
    assert client.limiter.waited_seconds > 0
