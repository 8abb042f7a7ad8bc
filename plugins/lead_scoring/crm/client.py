"""A small HubSpot CRM v3 client that works unchanged against real HubSpot and the sandbox.

Why not the official ``hubspot-api-client``: the loader keeps every record's raw JSON exactly as
sent (the SDK re-serialises through generated models), the sync needs the
``X-HubSpot-RateLimit-*`` headers of every response and per-record 207 errors, and the legacy
email-events endpoint is not in the v3 SDK. The tests point the official SDK at the sandbox to
prove both speak the same wire contract (``../shared/contracts/crm-wire-contract.md``).

Everything here streams: list endpoints are generators of pages, so memory stays flat however
large the portal is.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from lead_scoring.crm.ratelimit import DEFAULT_INTERVAL_SECONDS, RateLimiter

log = logging.getLogger(__name__)

LIST_PAGE_MAX = 100
SEARCH_PAGE_MAX = 200
SEARCH_RESULTS_MAX = 10_000  # HubSpot answers 400 when a query pages past this
SEARCH_MIN_INTERVAL = 0.22  # seconds: HubSpot allows 5 searches per second (margin for clocks)
BATCH_MAX = 100
HISTORY_BATCH_MAX = 50  # records per call when property history is asked for (as the SDK does)
EMAIL_EVENTS_PAGE_MAX = 1000
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class HubSpotError(RuntimeError):
    """A non-retryable error answer (or a retryable one that kept failing)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        category: str | None = None,
        correlation_id: str | None = None,
        body: Any = None,
    ) -> None:
        detail = f"HubSpot API {status}"
        if category:
            detail += f" {category}"
        super().__init__(f"{detail}: {message}")
        self.status = status
        self.category = category
        self.correlation_id = correlation_id
        self.body = body


@dataclass
class RateLimit:
    """The last rate-limit headers the API sent (absent on some endpoints, e.g. search)."""

    max: int | None = None
    remaining: int | None = None
    interval_ms: int | None = None
    daily: int | None = None
    daily_remaining: int | None = None

    def update(self, headers: httpx.Headers) -> None:
        def num(name: str) -> int | None:
            value = headers.get(name)
            return int(value) if value is not None and value.isdigit() else None

        if "x-hubspot-ratelimit-max" in headers:
            self.max = num("x-hubspot-ratelimit-max")
            self.remaining = num("x-hubspot-ratelimit-remaining")
            self.interval_ms = num("x-hubspot-ratelimit-interval-milliseconds")
        if "x-hubspot-ratelimit-daily" in headers:
            self.daily = num("x-hubspot-ratelimit-daily")
            self.daily_remaining = num("x-hubspot-ratelimit-daily-remaining")


@dataclass(frozen=True)
class BatchResult:
    """A batch write's outcome: 200 (all applied) or 207 (some records failed)."""

    status_code: int
    results: list[dict[str, Any]]
    errors: list[dict[str, Any]]

    def failed_ids(self) -> dict[str, str]:
        """Input ids that failed, each with its error category (e.g. ``OBJECT_NOT_FOUND``)."""
        failed: dict[str, str] = {}
        for error in self.errors:
            category = str(error.get("category", "ERROR"))
            for record_id in (error.get("context") or {}).get("ids", []):
                failed[str(record_id)] = category
        return failed


@dataclass
class ClientStats:
    """What the client did, for run metrics: requests, retries and answers by status.

    Shared by the threads of one client: change it only through ``count``."""

    requests: int = 0
    retries: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, *, requests: int = 0, retries: int = 0, status: int | None = None) -> None:
        with self._lock:
            self.requests += requests
            self.retries += retries
            if status is not None:
                self.statuses[status] += 1


class HubSpotClient:
    """HubSpot CRM v3 over HTTP with bearer auth, retries with backoff and jitter.

    Safe to share between threads (the sync sends several batches at once): the connection
    pool, the rate limiter and the stats are shared. ``rate_limit`` is the portal tier's calls
    per 10 seconds (100, 190 or 250; ``None``: only what the rate-limit headers announce).
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        max_attempts: int = 6,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        sleep: Any = time.sleep,
        search_min_interval: float = SEARCH_MIN_INTERVAL,
        rate_limit: int | None = None,
        rate_interval: float = DEFAULT_INTERVAL_SECONDS,
        max_connections: int = 32,
    ) -> None:
        if not token:
            raise ValueError("a HubSpot token is required")
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": "lead-scoring/0.1",
            },
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        self.search_min_interval = search_min_interval
        self._last_search = 0.0
        self._search_lock = threading.Lock()
        # Real time, whatever ``sleep`` is: the window is the server's, not the caller's.
        self.limiter = RateLimiter(rate_limit, rate_interval)
        self.rate_limit = RateLimit()
        self.stats = ClientStats()

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HubSpotClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff: spreads retries of concurrent callers apart."""
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))  # noqa: S311

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        ok: Sequence[int] = (200,),
        allow: Sequence[int] = (),
    ) -> httpx.Response:
        """Send one call, retrying 429, 5xx, timeouts and dropped connections.

        ``ok`` statuses return the response; ``allow`` statuses also return it (the caller
        handles them, e.g. 404 on a property lookup); anything else raises ``HubSpotError``.
        """
        last_problem = ""
        for attempt in range(self.max_attempts):
            slot = self.limiter.acquire()
            self.stats.count(requests=1)
            try:
                response = self._http.request(method, path, params=params, json=json)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                self.limiter.release(slot)
                last_problem = f"{type(exc).__name__}: {exc}"
            else:
                self.stats.count(status=response.status_code)
                self.rate_limit.update(response.headers)
                if "x-hubspot-ratelimit-max" in response.headers:
                    self.limiter.observe(
                        self.rate_limit.max, self.rate_limit.remaining, self.rate_limit.interval_ms
                    )
                self.limiter.release(slot)
                if response.status_code in ok or response.status_code in allow:
                    return response
                if response.status_code not in RETRY_STATUSES:
                    raise _error_from(response)
                last_problem = f"HTTP {response.status_code}"
                retry_after = response.headers.get("retry-after")
                # Retry-After is not documented by HubSpot; honour it when a server sends it.
                honour_retry_after = (
                    response.status_code == 429
                    and retry_after is not None
                    and retry_after.isdigit()
                    and attempt + 1 < self.max_attempts
                )
                if honour_retry_after:
                    self.stats.count(retries=1)
                    self._sleep(min(float(retry_after or 0), self.backoff_cap))
                    continue
            if attempt + 1 < self.max_attempts:
                self.stats.count(retries=1)
                delay = self._backoff(attempt)
                log.warning(
                    "%s %s failed (%s); retry %d/%d in %.1fs",
                    method,
                    path,
                    last_problem,
                    attempt + 1,
                    self.max_attempts - 1,
                    delay,
                )
                self._sleep(delay)
        raise HubSpotError(
            0, f"{method} {path} still failing after {self.max_attempts} attempts ({last_problem})"
        )

    # ------------------------------------------------------------------ contacts
    def iter_contact_pages(
        self, properties: Sequence[str], *, limit: int = LIST_PAGE_MAX, archived: bool = False
    ) -> Iterator[list[dict[str, Any]]]:
        """Every contact through the list endpoint, one page (≤ 100 records) at a time.

        The list endpoint has no 10,000-result cap, so it is the right one for full snapshots.
        """
        if not 1 <= limit <= LIST_PAGE_MAX:
            raise ValueError(f"limit must be 1..{LIST_PAGE_MAX}")
        params: dict[str, Any] = {
            "limit": limit,
            "properties": ",".join(properties),
            "archived": str(archived).lower(),
        }
        after: str | None = None
        while True:
            page_params = dict(params, after=after) if after else params
            body = self.request("GET", "/crm/v3/objects/contacts", params=page_params).json()
            yield list(body.get("results", []))
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return

    def search_contact_pages(
        self,
        properties: Sequence[str],
        *,
        modified_from: datetime,
        modified_to: datetime,
        limit: int = SEARCH_PAGE_MAX,
    ) -> Iterator[list[dict[str, Any]]]:
        """Contacts whose ``lastmodifieddate`` is in ``[modified_from, modified_to]``, a page at
        a time, each exactly once.

        Sorted by ``hs_object_id`` and paged with ``after``; before a query would page past
        HubSpot's 10,000-result cap it restarts with ``hs_object_id > last id seen``. Keying the
        restart on the id rather than the timestamp is what keeps a bulk job that stamped more
        than 10,000 records with one ``lastmodifieddate`` from looping (Airbyte #43317).
        """
        if not 1 <= limit <= SEARCH_PAGE_MAX:
            raise ValueError(f"limit must be 1..{SEARCH_PAGE_MAX}")
        window = [
            {
                "propertyName": "lastmodifieddate",
                "operator": "GTE",
                "value": _epoch_ms(modified_from),
            },
            {
                "propertyName": "lastmodifieddate",
                "operator": "LTE",
                "value": _epoch_ms(modified_to),
            },
        ]
        last_id = 0
        offset = 0
        while True:
            filters = [*window]
            if last_id:
                filters.append(
                    {"propertyName": "hs_object_id", "operator": "GT", "value": str(last_id)}
                )
            body: dict[str, Any] = {
                "filterGroups": [{"filters": filters}],
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                "properties": list(properties),
                "limit": limit,
            }
            if offset:
                body["after"] = str(offset)
            self._pace_search()
            answer = self.request("POST", "/crm/v3/objects/contacts/search", json=body).json()
            results = list(answer.get("results", []))
            if results:
                yield results
            following = ((answer.get("paging") or {}).get("next") or {}).get("after")
            if not following or not results:
                return
            if int(following) + limit > SEARCH_RESULTS_MAX:
                last_id = max(int(r["id"]) for r in results)
                offset = 0
            else:
                offset = int(following)

    def _pace_search(self) -> None:
        """Keep search calls under HubSpot's per-second search limit instead of meeting 429s."""
        with self._search_lock:
            wait = self._last_search + self.search_min_interval - time.monotonic()
            if wait > 0:
                self._sleep(wait)
            self._last_search = time.monotonic()

    def batch_read_contacts(self, ids: Sequence[str], properties: Sequence[str]) -> BatchResult:
        """Read up to 100 contacts by id with the given properties (missing ones: 207)."""
        if len(ids) > BATCH_MAX:
            raise ValueError(f"at most {BATCH_MAX} ids per batch, got {len(ids)}")
        if not ids:
            return BatchResult(200, [], [])
        return self._batch(
            "read", {"inputs": [{"id": i} for i in ids], "properties": list(properties)}
        )

    def batch_update_contacts(self, inputs: Sequence[dict[str, Any]]) -> BatchResult:
        """Update up to 100 contacts in one call; 207 answers carry the per-record failures."""
        if not inputs:
            return BatchResult(200, [], [])
        if len(inputs) > BATCH_MAX:
            raise ValueError(f"at most {BATCH_MAX} inputs per batch, got {len(inputs)}")
        return self._batch("update", {"inputs": list(inputs)})

    def iter_contact_history(
        self, ids: Sequence[str], properties: Sequence[str]
    ) -> Iterator[list[dict[str, Any]]]:
        """``propertiesWithHistory`` of ``properties`` for contacts by id, 50 per call (batch
        read; search cannot return history). Contacts deleted since are simply not returned."""
        for start in range(0, len(ids), HISTORY_BATCH_MAX):
            chunk = ids[start : start + HISTORY_BATCH_MAX]
            result = self._batch(
                "read",
                {
                    "properties": ["hs_object_id"],
                    "propertiesWithHistory": list(properties),
                    "inputs": [{"id": contact_id} for contact_id in chunk],
                },
            )
            yield result.results

    def _batch(self, action: str, body: dict[str, Any]) -> BatchResult:
        """One ``batch/<action>`` call; 200 and 207 both answer with results and errors."""
        response = self.request(
            "POST", f"/crm/v3/objects/contacts/batch/{action}", json=body, ok=(200, 207)
        )
        answer = response.json()
        return BatchResult(
            response.status_code, answer.get("results", []), answer.get("errors", [])
        )

    # ------------------------------------------------------------------ properties
    def get_contact_property(self, name: str) -> dict[str, Any] | None:
        response = self.request("GET", f"/crm/v3/properties/contacts/{name}", allow=(404,))
        return None if response.status_code == 404 else dict(response.json())

    def create_contact_property(self, definition: dict[str, Any]) -> bool:
        """Create a property; ``False`` when it already exists (409), so callers stay idempotent."""
        response = self.request(
            "POST", "/crm/v3/properties/contacts", json=definition, ok=(201,), allow=(409,)
        )
        return response.status_code == 201

    # ------------------------------------------------------------------ email events
    def iter_email_event_pages(
        self, start_ms: int, end_ms: int, *, limit: int = EMAIL_EVENTS_PAGE_MAX
    ) -> Iterator[list[dict[str, Any]]]:
        """Marketing-email events in ``[start_ms, end_ms]`` through the legacy events API."""
        params: dict[str, Any] = {
            "startTimestamp": start_ms,
            "endTimestamp": end_ms,
            "limit": limit,
        }
        offset: str | None = None
        while True:
            page_params = dict(params, offset=offset) if offset else params
            body = self.request("GET", "/email/public/v1/events", params=page_params).json()
            yield list(body.get("events", []))
            offset = body.get("offset")
            if not body.get("hasMore") or not offset:
                return


def _epoch_ms(moment: datetime) -> str:
    """Search filters take dates as epoch milliseconds in a string."""
    if moment.tzinfo is None:
        raise ValueError("search windows need timezone-aware datetimes")
    return str(int(moment.timestamp() * 1000))


def _error_from(response: httpx.Response) -> HubSpotError:
    try:
        body = response.json()
    except ValueError:
        body = {"message": response.text[:500]}
    if not isinstance(body, dict):
        body = {"message": str(body)[:500]}
    return HubSpotError(
        response.status_code,
        str(body.get("message", response.reason_phrase)),
        category=body.get("category") or body.get("errorType"),
        correlation_id=body.get("correlationId"),
        body=body,
    )
