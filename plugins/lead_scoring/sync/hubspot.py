"""The HubSpot target of the sync: score properties on contacts, written by batch update.

Each scoring model writes its own set of custom contact properties, named
``<crm_property_prefix>_<suffix>`` (``scoring_models.csv``), created when missing (get, create
on 404, accept 409). Batches of up to 100 contacts go through ``batch/update``; a 207 answer's
per-record errors are handled one by one (``OBJECT_NOT_FOUND``: the contact was deleted or
merged). A batch HubSpot refuses whole (400, a bad value in one record) is split in halves
until the bad records stand alone, so one bad record cannot hold back the other 99. After a
crash, the contacts in flight are read back with ``batch/read``.

The client (``lead_scoring.crm.client``) retries 429, 5xx, timeouts and dropped connections and
paces every call to the portal's tier; the engine (``lead_scoring.sync.engine``) does the diff,
the ledger, the write-ahead, the guard and the run metrics.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from lead_scoring.config import WarehouseConfig
from lead_scoring.crm.client import BATCH_MAX, HubSpotClient, HubSpotError
from lead_scoring.sync.engine import (
    DEFAULT_CONCURRENCY,
    DEFAULT_FIRST_SYNC_MAX_LEADS,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_CHANGES,
    Answer,
    Record,
    SyncResult,
    TooManyChanges,
    concurrency_from_env,
    max_attempts_from_env,
    max_changes_from_env,
    run_sync,
)

__all__ = [
    "PROPERTIES",
    "HubSpotTarget",
    "TooManyChanges",
    "concurrency_from_env",
    "ensure_properties",
    "max_attempts_from_env",
    "max_changes_from_env",
    "property_definitions",
    "sync_scores",
]

log = logging.getLogger(__name__)
BANDS = ("cold", "warm", "hot")
GRADES = ("A", "B", "C", "D")
GROUP = "contactinformation"
NOTE = "Written by the lead-scoring warehouse job; do not edit by hand."

# suffix -> (label, type, fieldType, options), one set per scoring model.
PROPERTIES: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "score": ("Lead score", "number", "number", ()),
    "band": ("Lead band", "enumeration", "select", BANDS),
    "fit_grade": ("Fit grade", "enumeration", "select", GRADES),
    "mql": ("Marketing qualified", "bool", "booleancheckbox", ("true", "false")),
    "mql_date": ("Marketing qualified on", "date", "date", ()),
    "sql": ("Sales qualified", "bool", "booleancheckbox", ("true", "false")),
    "sql_date": ("Sales qualified on", "date", "date", ()),
    "top_reasons": ("Score reasons", "string", "textarea", ()),
    "ruleset_version": ("Scoring ruleset version", "string", "text", ()),
    "scored_at": ("Scored at", "datetime", "date", ()),
}


def property_definitions(prefix: str) -> list[dict[str, Any]]:
    """The custom contact properties one scoring model writes to."""
    definitions = []
    for suffix, (label, type_, field_type, options) in PROPERTIES.items():
        definition: dict[str, Any] = {
            "name": f"{prefix}_{suffix}",
            "label": f"{label} ({prefix})",
            "type": type_,
            "fieldType": field_type,
            "groupName": GROUP,
            "description": NOTE,
        }
        if options:
            definition["options"] = [
                {"label": o.title(), "value": o, "displayOrder": i, "hidden": False}
                for i, o in enumerate(options)
            ]
        definitions.append(definition)
    return definitions


def ensure_properties(client: HubSpotClient, prefixes: list[str]) -> list[str]:
    """Create missing score properties (get, create on 404, accept 409); returns those created."""
    created = []
    for prefix in prefixes:
        for definition in property_definitions(prefix):
            if client.get_contact_property(
                definition["name"]
            ) is None and client.create_contact_property(definition):
                created.append(definition["name"])
    if created:
        log.info("created CRM properties: %s", ", ".join(created))
    return created


class HubSpotTarget:
    """Contacts in a HubSpot portal, through a (thread-safe, paced) ``HubSpotClient``."""

    name = "hubspot"
    batch_size = BATCH_MAX
    gone = frozenset({"OBJECT_NOT_FOUND"})

    def __init__(self, client: HubSpotClient) -> None:
        self.client = client

    def counters(self) -> tuple[int, int, int]:
        stats = self.client.stats
        return stats.requests, stats.retries, stats.statuses[429]

    def prepare(self, prefixes: list[str]) -> None:
        ensure_properties(self.client, prefixes)

    def write(self, records: list[Record]) -> Answer:
        return self._update_isolating(
            [{"id": lead_id, "properties": values} for lead_id, values in records]
        )

    def _update_isolating(self, inputs: list[dict[str, Any]]) -> Answer:
        try:
            answer = self.client.batch_update_contacts(inputs)
        except HubSpotError as exc:
            if exc.status != 400:
                raise
            if len(inputs) == 1:
                category = exc.category or "VALIDATION_ERROR"
                return Answer({str(inputs[0]["id"]): (category, str(exc))})
            middle = len(inputs) // 2
            first = self._update_isolating(inputs[:middle])
            second = self._update_isolating(inputs[middle:])
            return Answer({**first.refused, **second.refused}, first.splits + second.splits + 1)
        refused: dict[str, tuple[str, str]] = {}
        for error in answer.errors:
            category = str(error.get("category", "ERROR"))
            message = str(error.get("message", category))
            for record_id in (error.get("context") or {}).get("ids", []):
                refused[str(record_id)] = (category, message)
        return Answer(refused)

    def read_back(self, lead_ids: list[str], names: list[str]) -> dict[str, dict[str, str]]:
        held: dict[str, dict[str, str]] = {}
        for start in range(0, len(lead_ids), BATCH_MAX):
            answer = self.client.batch_read_contacts(lead_ids[start : start + BATCH_MAX], names)
            for record in answer.results:
                values = record.get("properties") or {}
                held[str(record["id"])] = {k: str(v or "") for k, v in values.items()}
        return held


def sync_scores(
    warehouse: WarehouseConfig,
    client: HubSpotClient,
    as_of: date,
    *,
    dag_run_id: str | None = None,
    dry_run: bool = False,
    max_changes: int = DEFAULT_MAX_CHANGES,
    approve_changes: bool = False,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    concurrency: int = DEFAULT_CONCURRENCY,
    max_first_sync_leads: int = DEFAULT_FIRST_SYNC_MAX_LEADS,
) -> SyncResult:
    """Send the as-of date's changed scores to HubSpot (see ``engine.run_sync``)."""
    return run_sync(
        warehouse,
        HubSpotTarget(client),
        as_of,
        dag_run_id=dag_run_id,
        dry_run=dry_run,
        max_changes=max_changes,
        approve_changes=approve_changes,
        max_attempts=max_attempts,
        concurrency=concurrency,
        max_first_sync_leads=max_first_sync_leads,
    )
