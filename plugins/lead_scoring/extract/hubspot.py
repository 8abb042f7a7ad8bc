"""Turn HubSpot API pages into raw-table rows (or quarantine records).

The extractor asks for an explicit property list: the properties scoring reads, lifecycle stage
dates for conversions, and never the scores this job writes back (so a sync does not look like
a contact change on the next extract).

Quarantine reasons:

=====================  ==========================================================
``malformed_record``   a contact without a string id and a properties object, a property
                       whose value is a list or an object (HubSpot sends strings), an email
                       event without an id and a type
``nul_character``      a NUL anywhere in the record (PostgreSQL text cannot hold it)
``bad_encoding``       a lone UTF-16 surrogate anywhere in the record (not valid Unicode)
``bad_timestamp``      ``updatedAt`` / ``created`` missing or unreadable, or a date property
                       (``createdate``, ``hs_lifecyclestage_*_date``) that is not a date
``invalid_email``      a contact whose email is set but is not an address
``oversized_value``    a property value over HubSpot's 65,536-character limit
``unknown_type``       an email event type the legacy events API does not define
``future_timestamp``   an email event, or a contact's date property, more than a day after
                       the extraction
=====================  ==========================================================

The record is quarantined whole, with the property or field that made it so in the detail;
the rest of its page loads.

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
    """ISO-8601 (``...Z`` or with an offset) or epoch milliseconds, as an aware UTC datetime.
    Anything else, or a moment outside the years 1 to 9999 in UTC, is a ``ValueError``."""
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    try:
        if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
            return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
        if not isinstance(value, str) or not value:
            raise ValueError(f"not a timestamp: {value!r}")
        moment = datetime.fromisoformat(value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (OverflowError, OSError) as exc:  # 1e30, Infinity, year 1 with a positive offset
        raise ValueError(f"{str(value)[:100]!r} is out of range ({exc})") from None


# Date properties of a contact: a value that is not a date, or one far in the future, is bad
# input (a lifecycle stage reached in 2099 would become a label of every backtest).
DATE_PROPERTIES = frozenset(
    {"createdate", *(f"hs_lifecyclestage_{stage}_date" for stage in LIFECYCLE_STAGES)}
)


def unstorable(raw: str, record: Any) -> tuple[str, str] | None:
    """(reason, detail) when ``raw`` (``record`` as JSON text) cannot be stored in PostgreSQL:
    a NUL, or a lone UTF-16 surrogate. The detail names the field. Cheap when all is well."""
    if "\\u0000" in raw:  # json.dumps writes a NUL as its escape
        where = field_with(record, _has_nul)
        if where:
            return "nul_character", f"{where} contains a NUL"
    if raw.isascii():
        return None
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        where = field_with(record, has_surrogate) or "a value"
        return "bad_encoding", f"{where} contains a lone UTF-16 surrogate (not valid Unicode)"
    return None


def _has_nul(text: str) -> bool:
    return "\x00" in text


def has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def field_with(value: Any, test: Any, path: str = "") -> str | None:
    """The dotted path of the first key or string value in ``value`` for which ``test`` holds."""
    if isinstance(value, str):
        return path or "the value" if test(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and test(key):
                return f"the key {name!r}"
            found = field_with(item, test, name)
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = field_with(item, test, f"{path}[{index}]")
            if found:
                return found
    return None


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


def contact_row(
    record: dict[str, Any], *, now: datetime | None = None
) -> tuple[Any, ...] | Rejected:
    raw = json.dumps(record, ensure_ascii=False, sort_keys=True)
    bad = unstorable(raw, record)
    if bad:
        return Rejected(*bad, raw)
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
    latest = (now or datetime.now(UTC)) + FUTURE_TOLERANCE
    for name, value in properties.items():
        if isinstance(value, list | dict):
            kind = "list" if isinstance(value, list) else "object"
            return Rejected(
                "malformed_record", f"property {name} is a JSON {kind}, not a string", raw
            )
        if isinstance(value, str) and len(value) > MAX_PROPERTY_CHARS:
            return Rejected(
                "oversized_value", f"{name}: {len(value)} characters > {MAX_PROPERTY_CHARS}", raw
            )
        if name in DATE_PROPERTIES and value not in (None, ""):
            try:
                moment = parse_timestamp(value)
            except ValueError as exc:
                return Rejected("bad_timestamp", f"property {name}: {exc}", raw)
            if moment > latest:
                return Rejected(
                    "future_timestamp",
                    f"property {name} is {moment.isoformat()}, in the future",
                    raw,
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
    bad = unstorable(raw, {"id": contact_id, "property": name, "entry": entry})
    if bad:
        return Rejected(*bad, raw)
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
    bad = unstorable(raw, event)
    if bad:
        return Rejected(*bad, raw)
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
