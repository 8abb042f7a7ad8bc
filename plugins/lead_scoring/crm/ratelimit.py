"""A thread-safe rolling-window request limiter sized to the portal's tier.

HubSpot counts every call of a private app in a rolling 10-second window (100 calls on Free and
Starter, 190 on Professional and Enterprise, 250 with the API limit increase; contract §9) and
answers 429 above it. The limiter keeps this client's calls under the configured ceiling, so
our own pacing never meets a 429, while several threads share it and keep the window full:

- a call takes a slot before it leaves and holds it while it is in flight; once answered it is
  counted at the time of its answer, so the window this client keeps is never shorter than the
  one the server keeps (the server counts the call when it arrives, a little earlier);
- the ``X-HubSpot-RateLimit-*`` headers of each answer can only lower the ceiling (a portal on
  a lower tier than configured) and set the window's length; ``Remaining: 0`` while this client
  still has room means other clients of the same app use the window too: calls then wait a
  slot's time before going out.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# Calls per 10 seconds of a private app, by HubSpot tier (contract §9).
TIERS = {"free": 100, "starter": 100, "professional": 190, "enterprise": 190, "api-add-on": 250}
DEFAULT_TIER = "starter"  # the lowest: a fresh install never burns a bigger portal's quota
DEFAULT_INTERVAL_SECONDS = 10.0


def rate_limit_from_env() -> int:
    """``LEAD_SCORING_HUBSPOT_RATE_LIMIT``: the portal's tier (``starter``, ``professional``,
    ``enterprise``, ``api-add-on``) or its calls per 10 seconds (1-1000); default ``starter``
    (100). The headers of HubSpot's answers can lower it, never raise it."""
    from lead_scoring.config import ConfigError

    raw = (os.environ.get("LEAD_SCORING_HUBSPOT_RATE_LIMIT") or DEFAULT_TIER).strip().lower()
    if raw in TIERS:
        return TIERS[raw]
    if raw.isdigit() and 1 <= int(raw) <= 1000:
        return int(raw)
    raise ConfigError(
        f"LEAD_SCORING_HUBSPOT_RATE_LIMIT must be a tier ({', '.join(TIERS)}) or calls per "
        f"10 seconds (1-1000), got {raw!r}"
    )


@dataclass(frozen=True)
class Slot:
    """A taken slot; give it back with ``RateLimiter.release``."""

    taken_at: float


class RateLimiter:
    """At most ``max_requests`` calls answered or in flight in any ``interval`` seconds."""

    def __init__(
        self,
        max_requests: int | None,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_requests is not None and max_requests < 1:
            raise ValueError(f"max_requests must be 1 or more, got {max_requests}")
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.configured = max_requests
        self.max_requests = max_requests
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._answered: deque[float] = deque()
        self._in_flight = 0
        self._crowded = False  # the server said the window is used up by others too
        self._lock = threading.Lock()
        self.waited_seconds = 0.0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def acquire(self) -> Slot:
        """Block until a call may leave; the slot is held until ``release``."""
        while True:
            with self._lock:
                now = self._clock()
                self._expire(now)
                limit = self.max_requests
                used = len(self._answered) + self._in_flight
                if limit is None or (used < limit and not self._crowded):
                    self._in_flight += 1
                    return Slot(now)
                if used >= limit:
                    wait = (
                        self._answered[0] + self.interval - now
                        if self._answered
                        else self.interval / limit
                    )
                else:  # crowded: let one slot's time pass before trying again
                    self._crowded = False
                    wait = self.interval / limit
                wait = max(wait, 0.001)
                self.waited_seconds += wait
            self._sleep(wait)

    def release(self, slot: Slot) -> None:
        """The call was answered (or failed): it counts in the window from now on."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            self._answered.append(self._clock())

    def observe(
        self, max_requests: int | None, remaining: int | None, interval_ms: int | None
    ) -> None:
        """What the server announced in an answer's ``X-HubSpot-RateLimit-*`` headers."""
        with self._lock:
            if interval_ms:
                self.interval = interval_ms / 1000
            if max_requests:
                self.max_requests = (
                    max_requests if self.configured is None else min(self.configured, max_requests)
                )
            if remaining == 0 and self.max_requests is not None:
                self._expire(self._clock())
                mine = len(self._answered) + self._in_flight
                self._crowded = mine < self.max_requests

    def _expire(self, now: float) -> None:
        while self._answered and now - self._answered[0] >= self.interval:
            self._answered.popleft()
