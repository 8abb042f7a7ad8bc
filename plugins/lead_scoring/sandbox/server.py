"""A local CRM server that follows the HubSpot CRM v3 wire contract.

It is the one stand-in the tests use, so it must behave like HubSpot where the client can tell:
bearer auth with a 401 body, opaque ``after`` cursors, ``paging`` absent on the last page, values
always strings, batch limits with 200 vs 207 answers, property create 201/409 and get 404, the
legacy email-events log with ``hasMore``/``offset``, and the ``X-HubSpot-RateLimit-*`` headers with
the documented 429 body. Routes under ``/_sandbox/`` are the sandbox's own (seeding a portal,
counting requests); real HubSpot has no such thing, and the product never calls them.

Built on the standard library's threaded HTTP server rather than a web framework because the
sandbox must control every byte of an error answer, and (for fault injection) the connection.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
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
BATCH_MAX = 100
EMAIL_EVENTS_LIMIT_MAX = 1000


@dataclass
class RateLimiter:
    """HubSpot's per-token limits: a rolling 10-second window and a daily counter."""

    per_interval: int = 190
    interval_ms: int = 10_000
    daily: int = 1_000_000
    _calls: dict[str, deque[float]] = field(default_factory=dict)
    _daily: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

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
        self, address: tuple[str, int], portal: Portal, token: str, limiter: RateLimiter
    ) -> None:
        super().__init__(address, SandboxHandler)
        self.portal = portal
        self.token = token
        self.limiter = limiter


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
                policy, headers = self.server.limiter.take(token)
                if policy is not None:
                    message = (
                        "You have reached your daily limit."
                        if policy == "DAILY"
                        else "You have reached your ten_secondly_rolling limit."
                    )
                    raise _Answer(
                        429,
                        {
                            "status": "error",
                            "message": message,
                            "errorType": "RATE_LIMIT",
                            "correlationId": str(uuid.uuid4()),
                            "policyName": policy,
                            "groupName": "publicapi:private-app-api-calls:sandbox",
                        },
                    )
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError as exc:
                raise _error(400, "VALIDATION_ERROR", f"Invalid JSON body: {exc.msg}") from None
            if isinstance(body, dict) and isinstance(body.get("inputs"), list):
                records = len(body["inputs"])
            status, answer = handler(self, query, body, match)
        except _Answer as answer_exc:
            status, answer = answer_exc.status, answer_exc.body
        except PortalError as exc:
            status, answer = exc.status, _error(exc.status, exc.category, exc.message).body
        except Exception:
            log.exception("sandbox route %s failed", route_name)
            status, answer = 500, _error(500, "INTERNAL_ERROR", "Internal error").body
        self.server.portal.log_request(method, route_name, status, records)
        self._send(status, answer, headers)

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
    limit = _int_param(query, "limit", 10, 1, LIST_LIMIT_MAX)
    after_raw = (query.get("after") or [""])[0]
    after_id = 0
    if after_raw:
        decoded = _decode_cursor(after_raw)
        if not decoded.isdigit():
            raise _error(400, "VALIDATION_ERROR", f"Invalid paging cursor: {after_raw!r}")
        after_id = int(decoded)
    archived = (query.get("archived") or ["false"])[0].lower() == "true"
    results, next_after = h.server.portal.list_contacts(
        after_id=after_id, limit=limit, properties=_property_names(query), archived=archived
    )
    answer: dict[str, Any] = {"results": results}
    if next_after is not None:
        cursor = _encode_cursor(str(next_after))
        answer["paging"] = {"next": {"after": cursor, "link": f"?after={cursor}"}}
    return 200, answer


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
    (
        "POST",
        re.compile(r"/crm/v3/objects/contacts/batch/update"),
        "contacts.batch_update",
        batch_update,
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
    ) -> None:
        self.portal = Portal(db_path)
        self.token = token
        self.limiter = RateLimiter(
            per_interval=rate_limit, interval_ms=rate_interval_ms, daily=daily_limit
        )
        self.httpd = SandboxHTTPServer((host, port), self.portal, token, self.limiter)
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
