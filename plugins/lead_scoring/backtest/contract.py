"""The import contract: bring an export from any CRM and backtest on it.

A dataset is a folder of three files (the full contract is in ``docs/backtest-import.md``):

``contacts.csv``
    ``lead_id`` and ``created_at`` (required); optional ``email``, ``job_title``, ``industry``,
    ``company_size``, ``country``, ``original_source``; ``attributes_known_at`` (when the
    attribute values were recorded; default ``created_at``); every other column is a custom
    attribute, which rules read as ``prop:<column>``.
``activities.csv`` or ``activities.jsonl``
    ``lead_id``, ``occurred_at``, ``activity_type`` (required); ``page_path`` (page views),
    ``activity_id`` (to de-duplicate re-imports; derived from the row otherwise).
``outcomes.csv``
    ``lead_id``, ``stage``, ``reached_at``: the lifecycle stages each lead reached
    (``marketingqualifiedlead``, ``salesqualifiedlead``, ``opportunity``, ``customer``) or
    ``lost``. Outcomes are the backtest's labels and never reach a rule.

and optionally ``backtest.json``, the dataset's backtest defaults (outcome stage, cutoff
cadence, maturity window).

The importer turns each row into what the extractors would have produced — a HubSpot contact
record, a Segment ``identify``/``page``/``track`` call, a HubSpot email event — and loads them
with the same row builders and ``load_batch``, so the same validation applies and a bad row goes
to the raw schema's quarantine table with its reason and payload. Each file loads in one
transaction; re-importing the same folder adds nothing (contact versions are de-duplicated by
content, events by their id).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lead_scoring.config import WarehouseConfig
from lead_scoring.extract.hubspot import contact_row, email_event_row, parse_timestamp
from lead_scoring.extract.segment import event_row
from lead_scoring.load.batch import LoadResult, Rejected, load_batch
from lead_scoring.load.tables import CONTACTS, EMAIL_EVENTS, WEB_EVENTS

log = logging.getLogger(__name__)

# Contract column -> HubSpot property.
STANDARD_ATTRIBUTES = {
    "email": "email",
    "job_title": "jobtitle",
    "industry": "industry",
    "company_size": "numemployees",
    "country": "country",
    "original_source": "hs_analytics_source",
}
RESERVED = {"lead_id", "created_at", "attributes_known_at"}
CUSTOM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Outcome stages in funnel order; `lost` is kept as HubSpot's `other` stage date.
OUTCOME_STAGES = ("marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer")
LOST = "lost"
LOST_PROPERTY = "hs_lifecyclestage_other_date"
# Activity types that are marketing-email events, and how HubSpot's events API spells them.
EMAIL_TYPES: dict[str, dict[str, str]] = {
    "email_delivered": {"type": "DELIVERED"},
    "email_open": {"type": "OPEN"},
    "email_click": {"type": "CLICK"},
    "email_hard_bounce": {"type": "BOUNCE", "category": "HARD_BOUNCE"},
    "email_soft_bounce": {"type": "BOUNCE", "category": "SOFT_BOUNCE"},
    "email_spam_report": {"type": "SPAMREPORT"},
    "email_unsubscribe": {"type": "STATUSCHANGE", "portalSubscriptionStatus": "UNSUBSCRIBED"},
}
ACTIVITY_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
SOURCE_PREFIX = "import"


class ContractError(ValueError):
    """The dataset folder does not follow the import contract; the message says what to fix."""


@dataclass
class ImportSummary:
    folder: str
    contacts: LoadResult
    email_events: LoadResult
    web_events: LoadResult
    custom_attributes: list[str] = field(default_factory=list)
    outcome_counts: dict[str, int] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return [
            f"dataset {self.folder}",
            f"  {self.contacts.summary()}",
            f"  {self.email_events.summary()}",
            f"  {self.web_events.summary()}",
            "  custom attributes (rules read them as prop:<name>): "
            + (", ".join(self.custom_attributes) or "none"),
            "  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcome_counts.items())),
        ]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _moment(value: str | None, column: str) -> datetime:
    if value is None or not str(value).strip():
        raise ValueError(f"{column} is empty")
    try:
        return parse_timestamp(str(value).strip())
    except ValueError:
        raise ValueError(f"{column} {str(value)[:60]!r} is not an ISO date or time") from None


def _payload(row: dict[str, Any], file_name: str, line_no: int) -> str:
    return json.dumps({"file": file_name, "line": line_no, "row": row}, ensure_ascii=False)


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        yield from enumerate(reader, start=2)


def _header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle), [])


def _require(path: Path, columns: set[str]) -> list[str]:
    if not path.exists():
        raise ContractError(f"{path} is missing (see docs/backtest-import.md)")
    header = _header(path)
    missing = sorted(columns - set(header))
    if missing:
        raise ContractError(f"{path.name}: required column(s) missing: {', '.join(missing)}")
    duplicated = sorted(name for name, n in Counter(header).items() if n > 1)
    if duplicated:
        raise ContractError(f"{path.name}: column(s) named twice: {', '.join(duplicated)}")
    return header


def read_defaults(folder: Path) -> dict[str, Any]:
    """The dataset's ``backtest.json`` (backtest defaults), or {}."""
    path = folder / "backtest.json"
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ContractError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ContractError(f"{path}: must hold a JSON object")
    return doc


def _read_outcomes(path: Path) -> tuple[dict[str, dict[str, datetime]], list[Rejected]]:
    outcomes: dict[str, dict[str, datetime]] = {}
    rejected: list[Rejected] = []
    if not path.exists():
        raise ContractError(f"{path} is missing: a backtest needs outcomes (see the contract)")
    _require(path, {"lead_id", "stage", "reached_at"})
    for line_no, row in _csv_rows(path):
        lead_id, stage = (row.get("lead_id") or "").strip(), (row.get("stage") or "").strip()
        try:
            if not lead_id:
                raise ValueError("lead_id is empty")
            if stage not in (*OUTCOME_STAGES, LOST):
                raise ValueError(f"stage {stage[:60]!r} is not one of {(*OUTCOME_STAGES, LOST)}")
            reached = _moment(row.get("reached_at"), "reached_at")
        except ValueError as exc:
            payload = _payload(row, path.name, line_no)
            rejected.append(Rejected("invalid_outcome", str(exc), payload, path.name, line_no))
            continue
        stages = outcomes.setdefault(lead_id, {})
        stages[stage] = min(reached, stages.get(stage, reached))
    return outcomes, rejected


@dataclass
class _Lead:
    email: str
    created: datetime


def _contact_records(
    path: Path,
    outcomes: dict[str, dict[str, datetime]],
    leads: dict[str, _Lead],
    custom: list[str],
    early_rejects: list[Rejected],
) -> Iterator[tuple[Any, ...] | Rejected]:
    yield from early_rejects
    for line_no, row in _csv_rows(path):
        lead_id = (row.get("lead_id") or "").strip()
        payload = _payload(row, path.name, line_no)
        try:
            if not lead_id:
                raise ValueError("lead_id is empty")
            if lead_id in leads:
                raise ValueError(f"lead_id {lead_id!r} appears twice")
            created = _moment(row.get("created_at"), "created_at")
            known_text = (row.get("attributes_known_at") or "").strip()
            known = _moment(known_text, "attributes_known_at") if known_text else created
            if known < created:
                raise ValueError("attributes_known_at is before created_at")
        except ValueError as exc:
            yield Rejected("invalid_contact", str(exc), payload, path.name, line_no)
            continue
        email = (row.get("email") or "").strip() or f"lead-{_slug(lead_id)}@import.invalid"
        properties: dict[str, Any] = {
            "hs_object_id": lead_id,
            "createdate": _iso(created),
            "hs_lifecyclestage_lead_date": _iso(created),
        }
        for column, prop in STANDARD_ATTRIBUTES.items():
            value = (row.get(column) or "").strip()
            if value:
                properties[prop] = value
        properties["email"] = email
        for column in custom:
            value = (row.get(column) or "").strip()
            if value:
                properties[column] = value
        stage_now = "lead"
        for stage, reached in sorted(outcomes.get(lead_id, {}).items(), key=lambda kv: kv[1]):
            if stage == LOST:
                properties[LOST_PROPERTY] = _iso(reached)
            else:
                properties[f"hs_lifecyclestage_{stage}_date"] = _iso(reached)
                stage_now = stage
        properties["lifecyclestage"] = stage_now
        record = {
            "id": lead_id,
            "properties": properties,
            "createdAt": _iso(created),
            # The version is valid from when its attributes were recorded: point-in-time
            # scoring cannot see them before (and a backtest leaves such leads out).
            "updatedAt": _iso(known),
            "archived": False,
        }
        result = contact_row(record)
        if not isinstance(result, Rejected):
            leads[lead_id] = _Lead(email.lower(), created)
        yield result


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _activity_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError:
                    doc = {"_unparsed": line.rstrip("\n")[:10_000]}
                yield line_no, doc if isinstance(doc, dict) else {"_unparsed": line[:10_000]}
    else:
        _require(path, {"lead_id", "occurred_at", "activity_type"})
        yield from _csv_rows(path)


@dataclass
class _ParsedActivity:
    lead: _Lead
    lead_id: str
    moment: datetime
    kind: str
    page_path: str
    activity_id: str


def _parse_activity(
    row: dict[str, Any], leads: dict[str, _Lead], seen: Counter[str]
) -> _ParsedActivity:
    if "_unparsed" in row:
        raise ValueError("the line is not a JSON object")
    lead_id = str(row.get("lead_id") or "").strip()
    lead = leads.get(lead_id)
    if lead is None:
        raise ValueError(f"lead_id {lead_id[:60]!r} is not a contact of the dataset")
    moment = _moment(row.get("occurred_at"), "occurred_at")
    kind = str(row.get("activity_type") or "").strip()
    if not ACTIVITY_TYPE.fullmatch(kind):
        raise ValueError(f"activity_type {kind[:60]!r} is not a snake_case name")
    page_path = str(row.get("page_path") or "").strip()
    if kind == "page_view" and not page_path.startswith("/"):
        raise ValueError("a page_view needs a page_path starting with /")
    given = str(row.get("activity_id") or "").strip()
    if given:
        activity_id = given
    else:
        key = f"{lead_id}|{_iso(moment)}|{kind}|{page_path}"
        seen[key] += 1
        activity_id = hashlib.sha256(f"{key}|{seen[key]}".encode()).hexdigest()
    return _ParsedActivity(lead, lead_id, moment, kind, page_path, activity_id)


def _web_events(
    path: Path, leads: dict[str, _Lead], now: datetime
) -> Iterator[tuple[Any, ...] | Rejected]:
    """An identify call per lead (binds its userId to its email), then the web activities."""
    for lead_id, lead in leads.items():
        identify = {
            "type": "identify",
            "messageId": f"{SOURCE_PREFIX}-identify-{hashlib.sha256(lead_id.encode()).hexdigest()}",
            "userId": f"{SOURCE_PREFIX}:{lead_id}",
            "timestamp": _iso(lead.created),
            "traits": {"email": lead.email},
        }
        text = json.dumps(identify, separators=(",", ":"))
        yield event_row(identify, text, "contacts.csv", 0, now, source_format="import")
    seen: Counter[str] = Counter()
    for line_no, row in _activity_rows(path):
        try:
            activity = _parse_activity(row, leads, seen)
        except ValueError as exc:
            # every bad row is quarantined once, with the web events' batch
            payload = _payload(row, path.name, line_no)
            yield Rejected("invalid_activity", str(exc), payload, path.name, line_no)
            continue
        if activity.kind in EMAIL_TYPES:
            continue
        event: dict[str, Any] = {
            "messageId": f"{SOURCE_PREFIX}-{activity.activity_id}",
            "userId": f"{SOURCE_PREFIX}:{activity.lead_id}",
            "timestamp": _iso(activity.moment),
        }
        if activity.kind == "page_view":
            event.update(type="page", properties={"path": activity.page_path})
        else:
            event.update(type="track", event=activity.kind)
            if activity.page_path:
                event["properties"] = {"path": activity.page_path}
        text = json.dumps(event, separators=(",", ":"))
        yield event_row(event, text, path.name, line_no, now, source_format="import")


def _email_events(
    path: Path, leads: dict[str, _Lead], now: datetime
) -> Iterator[tuple[Any, ...] | Rejected]:
    """The email activities as HubSpot email events (bad rows are quarantined by the web load,
    which reads every row)."""
    seen: Counter[str] = Counter()
    for _, row in _activity_rows(path):
        try:
            activity = _parse_activity(row, leads, seen)
        except ValueError:
            continue
        spelled = EMAIL_TYPES.get(activity.kind)
        if spelled is None:
            continue
        event = {
            "id": f"{SOURCE_PREFIX}-{activity.activity_id}",
            "created": _epoch_ms(activity.moment),
            "recipient": activity.lead.email,
            **spelled,
        }
        yield email_event_row(event, now=now)


def activities_file(folder: Path) -> Path:
    for name in ("activities.csv", "activities.jsonl"):
        if (folder / name).exists():
            return folder / name
    raise ContractError(f"{folder}: activities.csv or activities.jsonl is missing")


def import_dataset(
    warehouse: WarehouseConfig, folder: Path, *, now: datetime | None = None
) -> ImportSummary:
    """Load a contract folder into ``warehouse``'s raw tables (contacts, email and web events)."""
    folder = folder.resolve()
    now = now or datetime.now(UTC)
    contacts_path = folder / "contacts.csv"
    header = _require(contacts_path, {"lead_id", "created_at"})
    custom = [c for c in header if c not in RESERVED and c not in STANDARD_ATTRIBUTES]
    bad = [c for c in custom if not CUSTOM_NAME.fullmatch(c)]
    if bad:
        raise ContractError(
            f"contacts.csv: custom attribute column(s) {', '.join(map(repr, bad))} must be "
            "snake_case (lowercase letters, digits, _), as rules name them prop:<column>"
        )
    activities_path = activities_file(folder)
    defaults = read_defaults(folder)
    outcomes, outcome_rejects = _read_outcomes(folder / "outcomes.csv")
    leads: dict[str, _Lead] = {}
    source = f"{SOURCE_PREFIX}:{defaults.get('dataset') or folder.name}"
    log.info("importing %s into %s", folder, warehouse.describe())
    contacts = load_batch(
        warehouse,
        table=CONTACTS,
        source=f"{source}:contacts",
        records=_contact_records(contacts_path, outcomes, leads, custom, outcome_rejects),
        mode="import",
    )
    unknown = sorted(set(outcomes) - set(leads))
    if unknown:
        log.warning(
            "outcomes.csv: %d lead(s) without a loaded contact are ignored (e.g. %s)",
            len(unknown),
            ", ".join(unknown[:3]),
        )
    web = load_batch(
        warehouse,
        table=WEB_EVENTS,
        source=f"{source}:web",
        records=_web_events(activities_path, leads, now),
        mode="import",
    )
    email = load_batch(
        warehouse,
        table=EMAIL_EVENTS,
        source=f"{source}:email",
        records=_email_events(activities_path, leads, now),
        mode="import",
    )
    counts: Counter[str] = Counter()
    for lead_id, stages in outcomes.items():
        if lead_id in leads:
            counts.update(stages.keys())
    return ImportSummary(
        folder=str(folder),
        contacts=contacts,
        email_events=email,
        web_events=web,
        custom_attributes=custom,
        outcome_counts=dict(counts),
        defaults=defaults,
    )
