"""Read web-analytics events (Segment-spec JSONL, or GA4 BigQuery-export rows) into raw rows.

The export lives in a local folder or at any fsspec URL (``s3://bucket/segment-logs/``,
``gs://…``, ``file:///…``); files may be gzip-compressed. ``list_event_files`` names each file
with a fingerprint (size and modification stamp, or ETag), which is what lets a run read only
new or changed files.

A line that cannot be an event goes to quarantine with one of these reasons, its file and line
number, and the line as it was:

=====================  ==========================================================
``bad_encoding``       not UTF-8, or a lone UTF-16 surrogate escape (``"\\ud83d"``)
``malformed_json``     not JSON, JSON but not an object, or ``NaN`` / ``Infinity``
                       (not JSON, and PostgreSQL's jsonb refuses them)
``oversized_event``    over 64 KiB (Segment itself caps an event at 32 KB)
``nul_character``      contains a NUL, which PostgreSQL text and jsonb cannot hold
``unknown_type``       ``type`` is not one of the Segment spec's call types (or not a string)
``missing_message_id`` no ``messageId``: it could not be deduplicated
``missing_identity``   neither ``userId`` nor ``anonymousId`` (GA4: ``user_pseudo_id``)
``invalid_identity``   ``userId`` or ``anonymousId`` is not a string or a number
``missing_event_name`` a ``track`` call without ``event`` (GA4: no ``event_name``)
``bad_timestamp``      ``timestamp`` missing, not ISO-8601, or out of range (``1e30``, year 1
                       with an offset east of UTC) (GA4: ``event_timestamp``)
``future_timestamp``   more than a day ahead of the load
``invalid_event``      anything else that made the line unreadable (the error is the detail):
                       one bad line never fails the load
=====================  ==========================================================

Blank lines are not records and are skipped.

GA4 rows (``bq extract --destination_format NEWLINE_DELIMITED_JSON`` of ``events_*``) become
Segment-shaped events: ``page_view`` a ``page`` call, any other event a ``track`` call,
``user_pseudo_id`` the anonymousId, ``user_id`` the userId, the ``page_location`` parameter the
page URL. GA4 has no event id, so the messageId is a hash of the row: the same row exported
twice (daily and intraday tables overlap) is loaded once. The original row is kept whole under
``ga4`` in the stored event.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from lead_scoring.extract.hubspot import field_with, has_surrogate, parse_timestamp
from lead_scoring.load.batch import Rejected

log = logging.getLogger(__name__)

SEGMENT_TYPES = frozenset({"track", "page", "identify", "screen", "group", "alias"})
# A \uD800-\uDFFF escape: fine in a pair (an emoji written ASCII-only), not alone.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
MAX_EVENT_BYTES = 64 * 1024
FUTURE_TOLERANCE = timedelta(days=1)
FORMATS = ("segment", "ga4")
SUFFIXES = {
    "segment": (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz"),
    "ga4": (".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz"),
}


@dataclass(frozen=True)
class EventFile:
    """One file of the export: its path relative to the root, and what identifies its content."""

    name: str
    fingerprint: str


class EventSource:
    """A folder or fsspec URL holding an analytics export."""

    def __init__(self, location: str | Path, fmt: str = "segment") -> None:
        import fsspec  # type: ignore[import-untyped]  # imported here, not at DAG parse

        if fmt not in FORMATS:
            raise ValueError(f"events format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        self.location = str(location)
        self.format = fmt
        self.fs, root = fsspec.core.url_to_fs(self.location)
        self.root = root.rstrip("/") or root

    def describe(self) -> str:
        """The location without credentials a URL might carry."""
        parts = urlsplit(self.location)
        if parts.password or parts.username:
            return parts._replace(netloc=parts.hostname or "").geturl()
        return self.location

    def files(self) -> list[EventFile]:
        """The export's files, in a stable order, each with its fingerprint."""
        if not self.fs.exists(self.root):
            raise FileNotFoundError(f"web events location {self.describe()} does not exist")
        suffixes = SUFFIXES[self.format]
        if self.fs.isfile(self.root):
            infos = {self.root: self.fs.info(self.root)}
        else:
            infos = self.fs.find(self.root, detail=True)
        out = []
        for path, info in sorted(infos.items()):
            if info.get("type", "file") != "file" or not path.endswith(suffixes):
                continue
            name = path[len(self.root) :].lstrip("/") or Path(path).name
            out.append(EventFile(name, _fingerprint(info)))
        return out

    def open(self, name: str) -> BinaryIO:
        path = self.root if self.fs.isfile(self.root) else f"{self.root}/{name}"
        handle: BinaryIO = self.fs.open(path, "rb")
        if name.endswith(".gz"):
            return gzip.GzipFile(fileobj=handle)  # type: ignore[return-value]
        return handle


def _fingerprint(info: dict[str, Any]) -> str:
    """Size plus whatever the filesystem offers to tell a rewritten file apart."""
    stamp = next(
        (
            str(info[key])
            for key in ("ETag", "etag", "md5Hash", "mtime", "LastModified", "updated", "created")
            if info.get(key) is not None
        ),
        "",
    )
    return f"{info.get('size', '')}:{stamp}"


def web_event_rows(
    source: EventSource | str | Path,
    *,
    files: Sequence[EventFile] | None = None,
    fmt: str = "segment",
    now: datetime | None = None,
) -> Iterator[tuple[Any, ...] | Rejected]:
    """Rows for ``raw_analytics.web_events`` (or quarantine records) from the export's files
    (all of them, or ``files``), with progress in the log."""
    if not isinstance(source, EventSource):
        source = EventSource(source, fmt)
    now = now or datetime.now(UTC)
    chosen = source.files() if files is None else list(files)
    log.info("web events: %d file(s) to read under %s", len(chosen), source.describe())
    started = time.monotonic()
    lines = 0
    parse = parse_line if source.format == "segment" else parse_ga4_line
    for number, event_file in enumerate(chosen, start=1):
        with source.open(event_file.name) as handle:
            for line_no, raw_line in enumerate(handle, start=1):
                if not raw_line.strip():
                    continue
                lines += 1
                row: tuple[Any, ...] | Rejected
                try:
                    row = parse(raw_line, event_file.name, line_no, now)
                except Exception as exc:  # a kind of bad line nobody foresaw: keep it, go on
                    row = Rejected(
                        "invalid_event",
                        f"{type(exc).__name__}: {exc}"[:1000],
                        raw_line.decode("utf-8", "replace").rstrip("\r\n"),
                        event_file.name,
                        line_no,
                    )
                yield row
        if number % 100 == 0 or number == len(chosen):
            rate = lines / max(time.monotonic() - started, 1e-6)
            log.info(
                "web events: %d/%d files, %d lines (%.0f lines/s)", number, len(chosen), lines, rate
            )


def _decode(
    raw_line: bytes, source_file: str, line_no: int
) -> tuple[str, dict[str, Any]] | Rejected:
    """The line as text and a JSON object, or why it is neither."""

    def reject(reason: str, detail: str, payload: str) -> Rejected:
        return Rejected(reason, detail, payload, source_file, line_no)

    try:
        text = raw_line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        return reject("bad_encoding", str(exc), raw_line.decode("utf-8", "replace").rstrip("\r\n"))
    if len(raw_line) > MAX_EVENT_BYTES:
        return reject(
            "oversized_event", f"{len(raw_line)} bytes > {MAX_EVENT_BYTES}", text[:MAX_EVENT_BYTES]
        )
    if "\x00" in text or "\\u0000" in text:
        return reject("nul_character", "NUL cannot be stored in PostgreSQL text", text)
    try:
        event = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        return reject("malformed_json", f"{exc.msg} at column {exc.colno}", text)
    except ValueError as exc:
        return reject("malformed_json", str(exc), text)
    if not isinstance(event, dict):
        return reject("malformed_json", f"a JSON {type(event).__name__}, not an object", text)
    if SURROGATE_ESCAPE.search(text):
        where = field_with(event, has_surrogate)
        if where:
            return reject("bad_encoding", f"{where} holds a lone UTF-16 surrogate", text)
    return text, event


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (PostgreSQL's jsonb refuses it)")


def parse_line(
    raw_line: bytes, source_file: str, line_no: int, now: datetime
) -> tuple[Any, ...] | Rejected:
    """One Segment JSONL line."""
    decoded = _decode(raw_line, source_file, line_no)
    if isinstance(decoded, Rejected):
        return decoded
    text, event = decoded
    return event_row(event, text, source_file, line_no, now)


def parse_ga4_line(
    raw_line: bytes, source_file: str, line_no: int, now: datetime
) -> tuple[Any, ...] | Rejected:
    """One GA4 BigQuery-export row (JSON), as a Segment-shaped event."""
    decoded = _decode(raw_line, source_file, line_no)
    if isinstance(decoded, Rejected):
        return decoded
    text, row = decoded
    try:
        event = ga4_event(row, text)
    except ValueError as exc:
        return Rejected("bad_timestamp", f"event_timestamp: {exc}", text, source_file, line_no)
    stored = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return event_row(event, stored, source_file, line_no, now, source_format="ga4")


def _ga4_params(row: dict[str, Any], key: str = "event_params") -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in row.get(key) or []:
        if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
            continue
        value = item["value"]
        params[str(item.get("key"))] = next(
            (
                value[kind]
                for kind in ("string_value", "int_value", "float_value", "double_value")
                if value.get(kind) is not None
            ),
            None,
        )
    return params


def ga4_event(row: dict[str, Any], text: str) -> dict[str, Any]:
    """Map a GA4 export row to the Segment shape the staging models read."""
    micros = row.get("event_timestamp")
    if isinstance(micros, str) and micros.isdigit():
        micros = int(micros)
    if not isinstance(micros, int) or isinstance(micros, bool):
        raise ValueError(f"not epoch microseconds: {micros!r}")
    moment = datetime.fromtimestamp(micros / 1_000_000, tz=UTC)
    params = _ga4_params(row)
    name = row.get("event_name")
    page: dict[str, Any] = {}
    url = params.get("page_location")
    if isinstance(url, str) and url:
        parts = urlsplit(url)
        page = {
            "url": url,
            "path": parts.path or "/",
            "search": f"?{parts.query}" if parts.query else "",
            "title": params.get("page_title"),
            "referrer": params.get("page_referrer"),
        }
    event: dict[str, Any] = {
        "type": "page" if name == "page_view" else "track",
        "messageId": "ga4-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32],
        "timestamp": moment.isoformat().replace("+00:00", "Z"),
        "context": {"page": page} if page else {},
        "properties": {k: v for k, v in params.items() if k != "page_location"},
        "ga4": row,
    }
    if name == "page_view":
        event["name"] = page.get("title") or page.get("path")
    else:
        event["event"] = name
    if row.get("user_pseudo_id"):
        event["anonymousId"] = str(row["user_pseudo_id"])
    if row.get("user_id"):
        event["userId"] = str(row["user_id"])
    email = _ga4_params(row, "user_properties").get("email")
    if isinstance(email, str) and email:
        event["traits"] = {"email": email}
    return event


def event_row(
    event: dict[str, Any],
    text: str,
    source_file: str,
    line_no: int,
    now: datetime,
    *,
    source_format: str = "segment",
) -> tuple[Any, ...] | Rejected:
    def reject(reason: str, detail: str) -> Rejected:
        return Rejected(reason, detail, text, source_file, line_no)

    kind = event.get("type")
    if not isinstance(kind, str) or kind not in SEGMENT_TYPES:
        return reject("unknown_type", f"type {str(kind)[:100]!r} is not a Segment call type")
    message_id = event.get("messageId")
    if not isinstance(message_id, str) or not message_id.strip():
        return reject("missing_message_id", "messageId is required to deduplicate")
    user_id, anonymous_id = event.get("userId"), event.get("anonymousId")
    if not user_id and not anonymous_id:
        return reject("missing_identity", "neither userId nor anonymousId")
    for field, value in (("userId", user_id), ("anonymousId", anonymous_id)):
        if value and (isinstance(value, bool) or not isinstance(value, str | int | float)):
            kind_of = type(value).__name__
            return reject("invalid_identity", f"{field} is a JSON {kind_of}, not a string")
    name = event.get("event") if kind == "track" else event.get("name")
    if kind == "track" and (not isinstance(name, str) or not name.strip()):
        return reject("missing_event_name", "a track call needs an event name")
    try:
        moment = parse_timestamp(event.get("timestamp"))
    except ValueError as exc:
        return reject("bad_timestamp", f"timestamp: {exc}")
    if moment > now + FUTURE_TOLERANCE:
        return reject("future_timestamp", f"{moment.isoformat()} is after {now.isoformat()}")
    return (
        message_id,
        kind,
        name if isinstance(name, str) else None,
        str(anonymous_id) if anonymous_id else None,
        str(user_id) if user_id else None,
        moment,
        text,
        source_file,
        line_no,
        source_format,
    )
