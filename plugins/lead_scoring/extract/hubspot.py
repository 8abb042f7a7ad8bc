"""Turn HubSpot API pages into raw-table rows (or quarantine records).

The extractor asks for an explicit property list: the properties scoring reads, lifecycle stage
dates for conversions, and never the scores this job writes back (so a sync does not look like
a contact change on the next extract).

Quarantine reasons:

=====================  ==========================================================
``malformed_record``   a contact without a string id and a properties object, an email
                       event without an id and a type
``bad_timestamp``      ``updatedAt`` / ``created`` missing or unreadable
``invalid_email``      a contact whose email is set but is not an address
``oversized_value``    a property value over HubSpot's 65,536-character limit
``unknown_type``       an email event type the legacy events API does not define
``future_timestamp``   an email event more than a day after the extraction
=====================  ==========================================================

Contacts without an email are kept: they are CRM records all the same (they just cannot be
stitched to web visits).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from lead_scoring.crm.schema import LIFECYCLE_STAGES
from lead_scoring.load.batch import Rejected, payload_hash

log = logging.getLogger(__name__)

CONTACT_PROPERTIES: tuple[str, ...] = (
    "email", "firstname", "lastname", "company", "jobtitle", "industry", "numemployees",
    "country", "city", "hs_analytics_source", "lifecyclestage", "createdate", "lastmodifieddate",
    "hs_object_id",
    *(f"hs_lifecyclestage_{stage}_date" for stage in LIFECYCLE_STAGES),
)  # fmt: skip

# Properties whose history (propertiesWithHistory) is extracted: the lifecycle stage for the
# funnel, and the attributes demographic rules read, for exact point-in-time values.
HISTORY_PROPERTIES: tuple[str, ...] = (
    "lifecyclestage", "jobtitle", "industry", "numemployees", "country", "email",
)  # fmt: skip

# Changes to these alone do not make a new contact version.
VOLATILE_PROPERTIES = frozenset({"lastmodifieddate", "hs_lastmodifieddate"})

EMAIL_EVENT_TYPES = frozenset(
    {
        "SENT", "DROPPED", "PROCESSED", "DELIVERED", "DEFERRED", "BOUNCE", "OPEN", "CLICK",
        "PRINT", "FORWARD", "STATUSCHANGE", "SPAMREPORT", "UNBOUNCE", "SUPPRESSED",
    }
)  # fmt: skip
MAX_PROPERTY_CHARS = 65_536
FUTURE_TOLERANCE = timedelta(days=1)
# Deliberately loose: one @, no spaces, a dot in the domain. Deliverability is the CRM's job;
# this only keeps values that cannot be an address out of the join to web identities.
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


def parse_timestamp(value: Any) -> datetime:
    """ISO-8601 (``...Z`` or with an offset) or epoch milliseconds, as an aware UTC datetime."""
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a timestamp: {value!r}")
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def contact_rows(pages: Iterable[list[dict[str, Any]]]) -> Iterator[tuple[Any, ...] | Rejected]:
    """Rows for ``raw_crm.contacts`` from list-endpoint pages, with progress in the log."""
    started = time.monotonic()
    records = pages_read = 0
    for pages_read, page in enumerate(pages, start=1):
        for record in page:
            records += 1
            yield contact_row(record)
        if pages_read % 50 == 0:
            rate = records / max(time.monotonic() - started, 1e-6)
            log.info("contacts: %d pages, %d records (%.0f records/s)", pages_read, records, rate)
    elapsed = time.monotonic() - started
    log.info(
        "contacts: extracted %d records in %d pages in %.1fs (%.0f records/s)",
        records,
        pages_read,
        elapsed,
        records / max(elapsed, 1e-6),
    )


def contact_row(record: dict[str, Any]) -> tuple[Any, ...] | Rejected:
    raw = json.dumps(record, ensure_ascii=False, sort_keys=True)
    contact_id = record.get("id")
    properties = record.get("properties")
    if not isinstance(contact_id, str) or not contact_id or not isinstance(properties, dict):
        return Rejected(
            "malformed_record", "a contact needs a string id and a properties object", raw
        )
    try:
        updated_at = parse_timestamp(record.get("updatedAt"))
    except ValueError as exc:
        return Rejected("bad_timestamp", f"updatedAt: {exc}", raw)
    for name, value in properties.items():
        if isinstance(value, str) and len(value) > MAX_PROPERTY_CHARS:
            return Rejected(
                "oversized_value", f"{name}: {len(value)} characters > {MAX_PROPERTY_CHARS}", raw
            )
    email = properties.get("email")
    if email and not (isinstance(email, str) and EMAIL_PATTERN.fullmatch(email.strip())):
        return Rejected("invalid_email", f"email {str(email)[:200]!r} is not an address", raw)
    stable = {k: v for k, v in properties.items() if k not in VOLATILE_PROPERTIES}
    return (
        contact_id,
        updated_at,
        json.dumps(properties, ensure_ascii=False, sort_keys=True),
        payload_hash(json.dumps(stable, ensure_ascii=False, sort_keys=True)),
        bool(record.get("archived", False)),
        raw,
    )


def property_history_rows(
    pages: Iterable[list[dict[str, Any]]],
) -> Iterator[tuple[Any, ...] | Rejected]:
    """Rows for ``raw_crm.contact_property_history``: one per history entry of a record's
    ``propertiesWithHistory`` (newest first on the wire; the order does not matter here)."""
    for page in pages:
        for record in page:
            contact_id = record.get("id")
            history = record.get("propertiesWithHistory")
            if not isinstance(contact_id, str) or not isinstance(history, dict):
                raw = json.dumps(record, ensure_ascii=False, sort_keys=True)
                reason = "a history record needs an id and propertiesWithHistory"
                yield Rejected("malformed_record", reason, raw)
                continue
            for name, entries in history.items():
                for entry in entries if isinstance(entries, list) else [entries]:
                    yield _history_row(contact_id, str(name), entry)


def _history_row(contact_id: str, name: str, entry: Any) -> tuple[Any, ...] | Rejected:
    raw = json.dumps(
        {"id": contact_id, "property": name, "entry": entry}, ensure_ascii=False, sort_keys=True
    )
    if not isinstance(entry, dict) or not isinstance(entry.get("value"), str):
        return Rejected("malformed_record", f"{name}: a history entry needs a string value", raw)
    try:
        changed_at = parse_timestamp(entry.get("timestamp"))
    except ValueError as exc:
        return Rejected("bad_timestamp", f"{name} history timestamp: {exc}", raw)
    value = entry["value"]
    if len(value) > MAX_PROPERTY_CHARS:
        return Rejected("oversized_value", f"{name}: {len(value)} characters", raw)
    source_type = entry.get("sourceType")
    return (
        contact_id,
        name,
        value,
        changed_at,
        source_type if isinstance(source_type, str) else None,
        raw,
    )


def email_event_rows(
    pages: Iterable[list[dict[str, Any]]], *, now: datetime | None = None
) -> Iterator[tuple[Any, ...] | Rejected]:
    """Rows for ``raw_crm.email_events`` from legacy email-events pages."""
    now = now or datetime.now(UTC)
    started = time.monotonic()
    count = 0
    for page in pages:
        for event in page:
            count += 1
            yield email_event_row(event, now=now)
    log.info("email events: extracted %d events in %.1fs", count, time.monotonic() - started)


def email_event_row(
    event: dict[str, Any], *, now: datetime | None = None
) -> tuple[Any, ...] | Rejected:
    raw = json.dumps(event, ensure_ascii=False, sort_keys=True)
    event_id, event_type = event.get("id"), event.get("type")
    if not event_id or not isinstance(event_type, str) or not event_type:
        return Rejected("malformed_record", "an email event needs an id and a type", raw)
    if event_type not in EMAIL_EVENT_TYPES:
        return Rejected("unknown_type", f"email event type {event_type[:100]!r} is not known", raw)
    try:
        created = parse_timestamp(event.get("created"))
    except ValueError as exc:
        return Rejected("bad_timestamp", f"created: {exc}", raw)
    if created > (now or datetime.now(UTC)) + FUTURE_TOLERANCE:
        return Rejected("future_timestamp", f"created {created.isoformat()} is in the future", raw)
    recipient = event.get("recipient")
    return (
        str(event_id),
        event_type,
        recipient.lower() if isinstance(recipient, str) else None,
        created,
        raw,
    )
