"""A local CRM server that follows the HubSpot CRM v3 wire contract.

It is the one stand-in the tests use, so it must behave like HubSpot where the client can tell:
bearer auth with a 401 body; the contacts list with opaque ``after`` cursors (``paging`` absent
on the last page); search with filterGroups (AND within, OR across; 5 groups, 10 filters each,
25 in all), the 13 operators, one sort, ``limit`` <= 200, ``total`` and a 400 past 10,000
results, under its own 5-per-second limit; batch read/update/upsert/create with <= 100 inputs
and 200 vs 207 answers; property create 201/409 and get 404; the legacy email-events log with
``hasMore``/``offset``; values always strings; the ``X-HubSpot-RateLimit-*`` headers with the
documented 429 body. ``Faults`` injects 429s, 5xx answers, dropped connections and latency for
reliability tests. Routes under ``/_sandbox/`` are the sandbox's own (seeding a portal, counting
requests, setting faults); real HubSpot has no such thing, and the product never calls them.

Built on the standard library's threaded HTTP server rather than a web framework because the
sandbox must control every byte of an error answer, and (for fault injection) the connection.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import random
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lead_scoring.sandbox.portal import Portal, PortalError, now_iso

log = logging.getLogger(__name__)

LIST_LIMIT_MAX = 100
HISTORY_LIMIT_MAX = 50  # list page size when propertiesWithHistory is asked for
SEARCH_LIMIT_MAX = 200
SEARCH_RESULTS_MAX = 10_000
SEARCH_FILTER_GROUPS_MAX = 5
SEARCH_FILTERS_PER_GROUP_MAX = 10
SEARCH_FILTERS_MAX = 25
BATCH_MAX = 100
EMAIL_EVENTS_LIMIT_MAX = 1000


@dataclass
class RateLimiter:
    """HubSpot's per-token limits: a rolling 10-second window and a daily counter."""

    per_interval: int = 190
    interval_ms: int = 10_000
    daily: int = 1_000_000
    search_per_second: int = 5
    _calls: dict[str, deque[float]] = field(default_factory=dict)
    _searches: dict[str, deque[float]] = field(default_factory=dict)
    _daily: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take_search(self, token: str) -> bool:
        """Count a search call against the per-second search limit; False when over it."""
        now = time.monotonic()
        with self._lock:
            calls = self._searches.setdefault(token, deque())
            while calls and now - calls[0] >= 1.0:
                calls.popleft()
            if len(calls) >= self.search_per_second:
                return False
            calls.append(now)
            return True

    def take(self, token: str) -> tuple[str | None, dict[str, str]]:
        """Count a call. Returns the exceeded policy (or None) and the headers to send."""
        now = time.monotonic()
        window = self.interval_ms / 1000
        with self._lock:
            calls = self._calls.setdefault(token, deque())
            while calls and now - calls[0] >= window:
                calls.popleft()
            used_today = self._daily.get(token, 0)
            policy = None
            if used_today >= self.daily:
                policy = "DAILY"
            elif len(calls) >= self.per_interval:
                policy = "TEN_SECONDLY_ROLLING"
            else:
                calls.append(now)
                used_today += 1
                self._daily[token] = used_today
            headers = {
                "X-HubSpot-RateLimit-Max": str(self.per_interval),
                "X-HubSpot-RateLimit-Remaining": str(max(0, self.per_interval - len(calls))),
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.interval_ms),
                "X-HubSpot-RateLimit-Daily": str(self.daily),
                "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily - used_today)),
            }
        return policy, headers


@dataclass
class Faults:
    """Fault injection for reliability tests: each API call (never a ``/_sandbox/`` one) draws
    whether it is answered with a 429, a 5xx, or has its connection dropped without an answer,
    before the portal sees it; ``latency_ms`` delays every answer. All off by default."""

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    drop_rate: float = 0.0
    latency_ms: int = 0
    seed: int | None = None
    injected: dict[str, int] = field(default_factory=lambda: {"429": 0, "5xx": 0, "drop": 0})
    _rng: random.Random = field(default_factory=random.Random)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.validate()
        if self.seed is not None:
            self._rng.seed(self.seed)

    def validate(self) -> None:
        for name in ("rate_429", "rate_5xx", "drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a share between 0 and 1, got {value}")
        if self.rate_429 + self.rate_5xx + self.drop_rate > 1.0:
            raise ValueError("the fault shares add up to more than 1")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {self.latency_ms}")

    def update(self, settings: dict[str, Any]) -> None:
        with self._lock:
            for name in ("rate_429", "rate_5xx", "drop_rate"):
                if name in settings:
                    setattr(self, name, float(settings[name]))
            if "latency_ms" in settings:
                self.latency_ms = int(settings["latency_ms"])
            if settings.get("seed") is not None:
                self._rng.seed(settings["seed"])
            self.validate()

    def draw(self) -> str | None:
        """The fault for this call: "429", "5xx", "drop" or None."""
        with self._lock:
            roll = self._rng.random()
            for name, share in (
                ("429", self.rate_429),
                ("5xx", self.rate_5xx),
                ("drop", self.drop_rate),
            ):
                if roll < share:
                    self.injected[name] += 1
                    return name
                roll -= share
        return None

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rate_429": self.rate_429,
                "rate_5xx": self.rate_5xx,
                "drop_rate": self.drop_rate,
                "latency_ms": self.latency_ms,
                "injected": dict(self.injected),
            }


class _Dropped(Exception):
    """Raised inside a request to close the connection without answering."""


class _Answer(Exception):
    """Raised inside a route to answer immediately with an error body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _error(status: int, category: str, message: str, **extra: Any) -> _Answer:
    body: dict[str, Any] = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
    }
    body.update(extra)
    return _Answer(status, body)


_RATE_LIMIT_MESSAGES = {
    "DAILY": ("You have reached your daily limit.", "private-app-api-calls-daily"),
    "TEN_SECONDLY_ROLLING": (
        "You have reached your ten_secondly_rolling limit.",
        "private-app-api-calls",
    ),
    "SECONDLY": ("You have reached your secondly limit.", "search-api-calls"),
}


def _rate_limited(policy: str) -> _Answer:
    """The documented 429 body (``errorType``/``policyName``, not ``category``)."""
    message, group = _RATE_LIMIT_MESSAGES[policy]
    return _Answer(
        429,
        {
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy,
            "groupName": f"publicapi:{group}:sandbox",
        },
    )


def _encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise _error(400, "VALIDATION_ERROR", f"Invalid paging cursor: {cursor!r}") from None


Route = Callable[["SandboxHandler", dict[str, list[str]], Any, re.Match[str]], tuple[int, Any]]


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        portal: Portal,
        token: str,
        limiter: RateLimiter,
        faults: Faults,
    ) -> None:
        super().__init__(address, SandboxHandler)
        self.portal = portal
        self.token = token
        self.limiter = limiter
        self.faults = faults


class SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    server: SandboxHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sandbox %s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        route_name = "unknown"
        headers: dict[str, str] = {}
        records = 0
        try:
            route_name, handler, match = _route(method, parts.path)
            token = self._authenticate()
            if not route_name.startswith("sandbox."):
                self._inject_faults(method, route_name)
                policy, headers = self.server.limiter.take(token)
                if policy is not None:
                    raise _rate_limited(policy)
                if route_name == "contacts.search" and not self.server.limiter.take_search(token):
                    raise _rate_limited("SECONDLY")
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError as exc:
                raise _error(400, "VALIDATION_ERROR", f"Invalid JSON body: {exc.msg}") from None
            if isinstance(body, dict) and isinstance(body.get("inputs"), list):
                records = len(body["inputs"])
            status, answer = handler(self, query, body, match)
        except _Dropped:
            self.server.portal.log_request(method, route_name, 0, records)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        except _Answer as answer_exc:
            status, answer = answer_exc.status, answer_exc.body
        except PortalError as exc:
            status, answer = exc.status, _error(exc.status, exc.category, exc.message).body
        except Exception:
            log.exception("sandbox route %s failed", route_name)
            status, answer = 500, _error(500, "INTERNAL_ERROR", "Internal error").body
        self.server.portal.log_request(method, route_name, status, records)
        self._send(status, answer, headers)

    def _inject_faults(self, method: str, route_name: str) -> None:
        faults = self.server.faults
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        fault = faults.draw()
        if fault == "drop":
            raise _Dropped
        if fault == "429":
            raise _rate_limited("TEN_SECONDLY_ROLLING")
        if fault == "5xx":
            status = random.choice((500, 502, 503))  # noqa: S311 - test noise, not security
            raise _error(status, "INTERNAL_ERROR", f"injected fault on {method} {route_name}")

    def _authenticate(self) -> str:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            raise _error(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication "
                "and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            )
        token = header[7:].strip()
        if token != self.server.token:
            raise _error(
                401,
                "INVALID_AUTHENTICATION",
                "The OAuth token used to make this call expired or is invalid.",
            )
        return token


def _route(method: str, path: str) -> tuple[str, Route, re.Match[str]]:
    for verb, pattern, name, handler in ROUTES:
        match = pattern.fullmatch(path)
        if verb == method and match:
            return name, handler, match
    raise _error(404, "OBJECT_NOT_FOUND", f"No route for {method} {path}")


def _int_param(query: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    raw = (query.get(name) or [str(default)])[0]
    try:
        value = int(raw)
    except ValueError:
        raise _error(400, "VALIDATION_ERROR", f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise _error(
            400, "VALIDATION_ERROR", f"{name} must be between {low} and {high}, got {value}"
        )
    return value


def _property_names(query: dict[str, list[str]]) -> list[str] | None:
    names = [n.strip() for raw in query.get("properties", []) for n in raw.split(",") if n.strip()]
    return names or None


# ---------------------------------------------------------------------- routes
def list_contacts(
    h: SandboxHandler, query: dict[str, list[str]], _body: Any, _m: re.Match[str]
) -> tuple[int, Any]:
    with_history = _history_names(query.get("propertiesWithHistory"))
    # HubSpot serves at most 50 records a page when history is asked for.
    limit = min(
        _int_param(query, "limit", 10, 1, LIST_LIMIT_MAX),
        HISTORY_LIMIT_MAX if with_history else LIST_LIMIT_MAX,
    )
    after_raw = (query.get("after") or [""])[0]
    after_id = 0
    if after_raw:
        decoded = _decode_cursor(after_raw)
        if not decoded.isdigit():
            raise _error(400, "VALIDATION_ERROR", f"Invalid paging cursor: {after_raw!r}")
        after_id = int(decoded)
    archived = (query.get("archived") or ["false"])[0].lower() == "true"
    results, next_after = h.server.portal.list_contacts(
        after_id=after_id,
        limit=limit,
        properties=_property_names(query),
        archived=archived,
        with_history=with_history,
    )
    answer: dict[str, Any] = {"results": results}
    if next_after is not None:
        cursor = _encode_cursor(str(next_after))
        answer["paging"] = {"next": {"after": cursor, "link": f"?after={cursor}"}}
    return 200, answer


def _history_names(values: list[str] | None) -> list[str]:
    """``propertiesWithHistory`` as a list (repeated, or comma-separated) of names."""
    return [name for value in values or [] for name in str(value).split(",") if name]


def _batch_inputs(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise _error(400, "VALIDATION_ERROR", "The request body must have an 'inputs' array")
    inputs = body["inputs"]
    if len(inputs) > BATCH_MAX:
        raise _error(
            400,
            "VALIDATION_ERROR",
            f"Batch input size of {len(inputs)} exceeds the limit of {BATCH_MAX}",
        )
    return list(inputs)


def batch_update(
    h: SandboxHandler, _q: dict[str, list[str]], body: Any, _m: re.Match[str]
) -> tuple[int, Any]:
    started = now_iso()
    results, missing = h.server.portal.update_contacts(_batch_inputs(body))
    return _batch_answer(results, missing, started)


def _search_request(body: Any) -> dict[str, Any]:
    """Validate a search body as HubSpot does: filter caps, one sort, limit, the 10k window."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise _error(400, "VALIDATION_ERROR", "The search body must be a JSON object")
    groups = body.get("filterGroups") or []
    if not isinstance(groups, list) or len(groups) > SEARCH_FILTER_GROUPS_MAX:
        raise _error(
            400, "VALIDATION_ERROR", f"at most {SEARCH_FILTER_GROUPS_MAX} filterGroups are allowed"
        )
    filter_groups: list[list[dict[str, Any]]] = []
    for group in groups:
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list) or len(filters) > SEARCH_FILTERS_PER_GROUP_MAX:
            raise _error(
                400,
                "VALIDATION_ERROR",
                f"each filterGroup needs a filters list of at most {SEARCH_FILTERS_PER_GROUP_MAX}",
            )
        filter_groups.append([f if isinstance(f, dict) else {} for f in filters])
    if sum(len(g) for g in filter_groups) > SEARCH_FILTERS_MAX:
        raise _error(400, "VALIDATION_ERROR", f"at most {SEARCH_FILTERS_MAX} filters in total")
    sorts = body.get("sorts") or []
    if not isinstance(sorts, list) or len(sorts) > 1:
        raise _error(400, "VALIDATION_ERROR", "at most one sort is allowed")
    sort: tuple[str, bool] | None = None
    if sorts:
        first = sorts[0]
        if isinstance(first, str):  # the SDK types sorts as strings: "name" or "-name"
            sort = (first.lstrip("-"), first.startswith("-"))
        elif isinstance(first, dict) and isinstance(first.get("propertyName"), str):
            direction = str(first.get("direction", "ASCENDING")).upper()
            if direction not in ("ASCENDING", "DESCENDING"):
                raise _error(400, "VALIDATION_ERROR", "direction must be ASCENDING or DESCENDING")
            sort = (first["propertyName"], direction == "DESCENDING")
        else:
            raise _error(400, "VALIDATION_ERROR", "a sort needs a propertyName")
    limit = body.get("limit", 10)
    if not isinstance(limit, int) or not 1 <= limit <= SEARCH_LIMIT_MAX:
        raise _error(
            400, "VALIDATION_ERROR", f"limit must be between 1 and {SEARCH_LIMIT_MAX}, got {limit}"
        )
    after_raw = str(body.get("after") or "0")
    if not after_raw.isdigit():
        raise _error(400, "VALIDATION_ERROR", f"Invalid paging cursor: {after_raw!r}")
    offset = int(after_raw)
    if offset + limit > SEARCH_RESULTS_MAX:
        raise _error(
            400,
            "VALIDATION_ERROR",
            f"Search results are limited to {SEARCH_RESULTS_MAX} records per query "
            f"(after={offset}, limit={limit}); narrow the filters instead of paging further",
        )
    properties = body.get("properties")
    if properties is not None and not isinstance(properties, list):
        raise _error(400, "VALIDATION_ERROR", "properties must be a list")
    query = body.get("query")
    return {
        "filter_groups": filter_groups,
        "sort": sort,
        "query": str(query) if query else None,
        "properties": [str(p) for p in properties] if properties else None,
        "offset": offset,
        "limit": limit,
    }


def search_contacts(
    h: SandboxHandler, _q: dict[str, list[str]], body: Any, _m: re.Match[str]
) -> tuple[int, Any]:
    request = _search_request(body)
    results, total = h.server.portal.search_contacts(**request)
    answer: dict[str, Any] = {"total": total, "results": results}
    following = request["offset"] + len(results)
    if following < total:
        answer["paging"] = {"next": {"after": str(following), "link": f"?after={following}"}}
    return 200, answer


def _batch_answer(
    results: list[dict[str, Any]], missing: list[str], started: str
) -> tuple[int, Any]:
    answer: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "requestedAt": started,
        "startedAt": started,
        "completedAt": now_iso(),
    }
    if not missing:
        return 200, answer
    answer["numErrors"] = 1
    answer["errors"] = [
        {
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": "Could not get some CONTACT objects, they may be deleted or not exist. "
            "Check that ids are valid.",
            "context": {"ids": missing},
            "links": {},
            "errors": [],
        }
    ]
    return 207, answer


def batch_read(
    h: SandboxHandler, _q: dict[str, list[str]], body: Any, _m: re.Match[str]
) -> tuple[int, Any]:
    started = now_iso()
    inputs = _batch_inputs(body)
    keys = []
    for item in inputs:
        if not isinstance(item, dict) or not item.get("id"):
            raise _error(400, "VALIDATION_ERROR", "every input needs an id")
        keys.append(str(item["id"]))
    properties = body.get("properties")
    with_history = body.get("propertiesWithHistory")
    results, missing = h.server.portal.read_contacts(
        keys,
        id_property=str(body.get("idProperty") or "hs_object_id"),
        properties=[str(p) for p in properties] if isinstance(properties, list) else None,
        with_history=_history_names(with_history if isinstance(with_history, list) else None),
    )
    return _batch_answer(results, missing, started)


def batch_upsert(
    h: SandboxHandler, _q: dict[str, list[str]], body: Any, _m: re.Match[str]
) -> tuple[int, Any]:
    started = now_iso()
    return _batch_answer(h.server.portal.upsert_contacts(_batch_inputs(body)), [], started)


def batch_create(
    h: SandboxHandler, _q: dict[str, list[str]], body: Any, _m: re.Match[str]
) -> tuple[int, Any]:
    started = now_iso()
    _, answer = _batch_answer(h.server.portal.create_contacts(_batch_inputs(body)), [], started)
    return 201, answer


def sandbox_faults(
    h: SandboxHandler, _q: dict[str, list[str]], body: Any, _m: re.Match[str]
) -> tuple[int, Any]:
    if body is not None:
        if not isinstance(body, dict):
            raise _error(400, "VALIDATION_ERROR", "body must be an object of fault settings")
        try:
            h.server.faults.update(body)
        except (TypeError, ValueError) as exc:
            raise _error(400, "VALIDATION_ERROR", str(exc)) from None
    return 200, h.server.faults.as_dict()


def get_property(
    h: SandboxHandler, _q: dict[str, list[str]], _b: Any, m: re.Match[str]
) -> tuple[int, Any]:
    definition = h.server.portal.get_property(m["name"])
    if definition is None:
        raise _error(404, "OBJECT_NOT_FOUND", f"Unable to find property with name: {m['name']}")
    return 200, definition


def list_properties(
    h: SandboxHandler, _q: dict[str, list[str]], _b: Any, _m: re.Match[str]
) -> tuple[int, Any]:
    return 200, {"results": h.server.portal.list_properties()}


def create_property(
    h: SandboxHandler, _q: dict[str, list[str]], body: Any, _m: re.Match[str]
) -> tuple[int, Any]:
    if not isinstance(body, dict):
        raise _error(400, "VALIDATION_ERROR", "The request body must be a property definition")
    return 201, h.server.portal.create_property(body)


def email_events(
    h: SandboxHandler, query: dict[str, list[str]], _b: Any, _m: re.Match[str]
) -> tuple[int, Any]:
    limit = _int_param(query, "limit", 100, 1, EMAIL_EVENTS_LIMIT_MAX)
    start = _int_param(query, "startTimestamp", 0, 0, 2**62)
    end = _int_param(query, "endTimestamp", 2**62, 0, 2**62)
    after = None
    offset_raw = (query.get("offset") or [""])[0]
    if offset_raw:
        created, _, event_id = _decode_cursor(offset_raw).partition(":")
        if not created.isdigit():
            raise _error(400, "VALIDATION_ERROR", f"Invalid offset: {offset_raw!r}")
        after = (int(created), event_id)
    events, position = h.server.portal.email_events(
        start_ms=start, end_ms=end, after=after, limit=limit
    )
    answer: dict[str, Any] = {"hasMore": position is not None, "events": events}
    if position is not None:
        answer["offset"] = _encode_cursor(f"{position[0]}:{position[1]}")
    return 200, answer


def sandbox_seed_contacts(
    h: SandboxHandler, _q: dict[str, list[str]], body: Any, _m: re.Match[str]
) -> tuple[int, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("contacts"), list):
        raise _error(400, "VALIDATION_ERROR", "body must be {'contacts': [...]}")
    return 200, h.server.portal.seed_contacts(body["contacts"])


def sandbox_seed_email_events(
    h: SandboxHandler, _q: dict[str, list[str]], body: Any, _m: re.Match[str]
) -> tuple[int, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise _error(400, "VALIDATION_ERROR", "body must be {'events': [...]}")
    return 200, {"inserted": h.server.portal.add_email_events(body["events"])}


def sandbox_stats(
    h: SandboxHandler, _q: dict[str, list[str]], _b: Any, _m: re.Match[str]
) -> tuple[int, Any]:
    return 200, h.server.portal.stats()


ROUTES: list[tuple[str, re.Pattern[str], str, Route]] = [
    ("GET", re.compile(r"/crm/v3/objects/contacts/?"), "contacts.list", list_contacts),
    ("POST", re.compile(r"/crm/v3/objects/contacts/search"), "contacts.search", search_contacts),
    ("POST", re.compile(r"/crm/v3/objects/contacts/batch/read"), "contacts.batch_read", batch_read),
    (
        "POST",
        re.compile(r"/crm/v3/objects/contacts/batch/update"),
        "contacts.batch_update",
        batch_update,
    ),
    (
        "POST",
        re.compile(r"/crm/v3/objects/contacts/batch/upsert"),
        "contacts.batch_upsert",
        batch_upsert,
    ),
    (
        "POST",
        re.compile(r"/crm/v3/objects/contacts/batch/create"),
        "contacts.batch_create",
        batch_create,
    ),
    ("GET", re.compile(r"/crm/v3/properties/contacts/?"), "properties.list", list_properties),
    (
        "GET",
        re.compile(r"/crm/v3/properties/contacts/(?P<name>[A-Za-z0-9_]+)"),
        "properties.get",
        get_property,
    ),
    ("POST", re.compile(r"/crm/v3/properties/contacts/?"), "properties.create", create_property),
    ("GET", re.compile(r"/email/public/v1/events"), "email_events.list", email_events),
    ("POST", re.compile(r"/_sandbox/contacts"), "sandbox.seed_contacts", sandbox_seed_contacts),
    (
        "POST",
        re.compile(r"/_sandbox/email-events"),
        "sandbox.seed_email_events",
        sandbox_seed_email_events,
    ),
    ("GET", re.compile(r"/_sandbox/stats"), "sandbox.stats", sandbox_stats),
    ("GET", re.compile(r"/_sandbox/faults"), "sandbox.faults", sandbox_faults),
    ("POST", re.compile(r"/_sandbox/faults"), "sandbox.faults", sandbox_faults),
]


class Sandbox:
    """A running sandbox.

    ``with Sandbox(port=0) as sb: client = HubSpotClient(sb.url, sb.token)``
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = "sandbox-token",  # noqa: S107 - a local stand-in, not a credential
        db_path: str | Path = ":memory:",
        rate_limit: int = 190,
        rate_interval_ms: int = 10_000,
        daily_limit: int = 1_000_000,
        search_per_second: int = 5,
        faults: Faults | None = None,
    ) -> None:
        self.portal = Portal(db_path)
        self.token = token
        self.limiter = RateLimiter(
            per_interval=rate_limit,
            interval_ms=rate_interval_ms,
            daily=daily_limit,
            search_per_second=search_per_second,
        )
        self.faults = faults or Faults()
        self.httpd = SandboxHTTPServer((host, port), self.portal, token, self.limiter, self.faults)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Sandbox:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="crm-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.portal.close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
