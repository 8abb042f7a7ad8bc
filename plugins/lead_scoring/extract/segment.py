"""Read Segment-spec events from JSONL files (plain or gzip) into raw-table rows.

A line that cannot be a Segment event goes to quarantine with one of these reasons, its file and
line number, and the line as it was:

=====================  ==========================================================
``bad_encoding``       not UTF-8
``malformed_json``     not JSON, or JSON but not an object
``oversized_event``    over 64 KiB (Segment itself caps an event at 32 KB)
``nul_character``      contains a NUL, which PostgreSQL text and jsonb cannot hold
``unknown_type``       ``type`` is not one of the Segment spec's call types
``missing_message_id`` no ``messageId``: it could not be deduplicated
``missing_identity``   neither ``userId`` nor ``anonymousId``
``missing_event_name`` a ``track`` call without ``event``
``bad_timestamp``      ``timestamp`` missing or not ISO-8601
``future_timestamp``   more than a day ahead of the load
=====================  ==========================================================

Blank lines are not records and are skipped.
"""

from __future__ import annotations

import gzip
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from lead_scoring.extract.hubspot import parse_timestamp
from lead_scoring.load.batch import Rejected

log = logging.getLogger(__name__)

SEGMENT_TYPES = frozenset({"track", "page", "identify", "screen", "group", "alias"})
MAX_EVENT_BYTES = 64 * 1024
FUTURE_TOLERANCE = timedelta(days=1)
SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")


def event_files(root: Path) -> list[Path]:
    """The export's files under ``root``, in a stable order."""
    if not root.exists():
        raise FileNotFoundError(f"web events folder {root} does not exist")
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))


def _open(path: Path) -> BinaryIO:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]  # GzipFile reads bytes lines
    return path.open("rb")


def web_event_rows(
    root: Path, *, now: datetime | None = None
) -> Iterator[tuple[Any, ...] | Rejected]:
    """Rows for ``raw_analytics.web_events`` (or quarantine records) from files under ``root``."""
    now = now or datetime.now(UTC)
    files = event_files(root)
    log.info("web events: %d file(s) under %s", len(files), root)
    started = time.monotonic()
    lines = 0
    for number, path in enumerate(files, start=1):
        name = str(path.relative_to(root)) if path != root else path.name
        with _open(path) as handle:
            for line_no, raw_line in enumerate(handle, start=1):
                if not raw_line.strip():
                    continue
                lines += 1
                yield parse_line(raw_line, name, line_no, now)
        if number % 100 == 0 or number == len(files):
            rate = lines / max(time.monotonic() - started, 1e-6)
            log.info(
                "web events: %d/%d files, %d lines (%.0f lines/s)", number, len(files), lines, rate
            )


def parse_line(
    raw_line: bytes, source_file: str, line_no: int, now: datetime
) -> tuple[Any, ...] | Rejected:
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
        event = json.loads(text)
    except json.JSONDecodeError as exc:
        return reject("malformed_json", f"{exc.msg} at column {exc.colno}", text)
    if not isinstance(event, dict):
        return reject("malformed_json", f"a JSON {type(event).__name__}, not an object", text)
    return event_row(event, text, source_file, line_no, now)


def event_row(
    event: dict[str, Any], text: str, source_file: str, line_no: int, now: datetime
) -> tuple[Any, ...] | Rejected:
    def reject(reason: str, detail: str) -> Rejected:
        return Rejected(reason, detail, text, source_file, line_no)

    kind = event.get("type")
    if kind not in SEGMENT_TYPES:
        return reject("unknown_type", f"type {kind!r} is not a Segment call type")
    message_id = event.get("messageId")
    if not isinstance(message_id, str) or not message_id.strip():
        return reject("missing_message_id", "messageId is required to deduplicate")
    user_id, anonymous_id = event.get("userId"), event.get("anonymousId")
    if not user_id and not anonymous_id:
        return reject("missing_identity", "neither userId nor anonymousId")
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
    )
