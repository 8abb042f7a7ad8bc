"""The Salesforce target of the sync: score fields on Leads, upserted by an external id through
Bulk API 2.0 ingest jobs (contract §11).

Each lead is a row keyed by the external id field (default ``DW_Lead_Key__c``, holding the
warehouse's lead id); each value the HubSpot target writes as ``<prefix>_<suffix>`` is the
custom field ``<prefix>_<suffix>__c`` (``salesforce_fields`` lists them with their types, for
the org's admin to create: Salesforce fields are metadata, not data, so the sync checks they
exist and stops with the missing ones named instead of creating them). An empty value is sent
as ``#N/A`` (null): an empty cell would leave the old value in place.

One batch is one ingest job of up to ``batch_size`` leads (default 10,000; Salesforce counts
jobs and batches per day, and advises the REST Composite API below 2,000 records). A record the
org refuses comes back in ``failedResults`` with its ``sf__Error``. Leads the org cannot update
are recorded and not retried: converted Leads (``CANNOT_UPDATE_CONVERTED_LEAD``), deleted ones,
and keys the org has no Lead for (an upsert would create one without ``LastName`` and
``Company``: ``REQUIRED_FIELD_MISSING``). A job that fails or is aborted as a whole raises: its
leads stay in flight and the next run reads them back (SOQL) before sending them again.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from lead_scoring.config import WarehouseConfig
from lead_scoring.crm.salesforce import SalesforceBulkClient, SalesforceError
from lead_scoring.sync.engine import (
    DEFAULT_CONCURRENCY,
    DEFAULT_FIRST_SYNC_MAX_LEADS,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_CHANGES,
    SUFFIXES,
    Answer,
    Record,
    SyncResult,
    run_sync,
)

DEFAULT_EXTERNAL_ID = "DW_Lead_Key__c"
DEFAULT_BATCH_SIZE = 10_000
READ_BACK_CHUNK = 200  # keys per SOQL query (keeps the URL and the answer small)
NULL = "#N/A"
# Salesforce field type per value (picklists would do for band and grade; text keeps the
# set-up to one kind of field an admin can create in bulk).
FIELD_TYPES = {
    "score": "number",
    "band": "text",
    "fit_grade": "text",
    "mql": "checkbox",
    "mql_date": "date",
    "sql": "checkbox",
    "sql_date": "date",
    "top_reasons": "text",
    "ruleset_version": "text",
    "scored_at": "datetime",
}


def salesforce_fields(prefix: str) -> dict[str, str]:
    """The custom Lead fields one scoring model writes to: API name -> type."""
    return {f"{prefix}_{suffix}__c": FIELD_TYPES[suffix] for suffix in SUFFIXES}


def _held(value: Any) -> str:
    """A queried value as the sync's payload spells it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class SalesforceTarget:
    """Leads in a Salesforce org, through a (thread-safe) ``SalesforceBulkClient``."""

    name = "salesforce"
    gone = frozenset(
        {"CANNOT_UPDATE_CONVERTED_LEAD", "ENTITY_IS_DELETED", "REQUIRED_FIELD_MISSING"}
    )

    def __init__(
        self,
        client: SalesforceBulkClient,
        *,
        external_id: str = DEFAULT_EXTERNAL_ID,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be 1 or more")
        self.client = client
        self.external_id = external_id
        self.batch_size = batch_size

    def counters(self) -> tuple[int, int, int]:
        return self.client.requests, self.client.retries, 0

    def prepare(self, prefixes: list[str]) -> None:
        have = self.client.lead_fields()
        wanted = {self.external_id: "text"}
        for prefix in prefixes:
            wanted.update(salesforce_fields(prefix))
        missing = sorted(set(wanted) - set(have))
        if missing:
            raise SalesforceError(
                400,
                "MISSING_FIELDS",
                f"the Lead object has no field {', '.join(missing)}: create them (types in "
                "lead_scoring.sync.salesforce.salesforce_fields) before the first sync",
            )

    def write(self, records: list[Record]) -> Answer:
        rows = [
            {self.external_id: lead_id, **{f"{k}__c": v or NULL for k, v in values.items()}}
            for lead_id, values in records
        ]
        outcome = self.client.upsert("Lead", self.external_id, rows)
        if outcome.state != "JobComplete":
            raise SalesforceError(
                0, outcome.state.upper(), f"ingest job {outcome.job_id}: {outcome.error_message}"
            )
        refused: dict[str, tuple[str, str]] = {}
        for row in outcome.failed:
            code, _, message = (row.get("sf__Error") or "ERROR").partition(":")
            refused[row[self.external_id]] = (code, message or code)
        answered = {row[self.external_id] for row in outcome.successful} | set(refused)
        for lead_id, _ in records:  # never answered for: retried by the next run
            if lead_id not in answered:
                refused[lead_id] = ("UNPROCESSED", f"not in the results of job {outcome.job_id}")
        return Answer(refused)

    def read_back(self, lead_ids: list[str], names: list[str]) -> dict[str, dict[str, str]]:
        held: dict[str, dict[str, str]] = {}
        fields = [f"{name}__c" for name in names]
        for start in range(0, len(lead_ids), READ_BACK_CHUNK):
            chunk = lead_ids[start : start + READ_BACK_CHUNK]
            for key, lead in self.client.leads_by_key(self.external_id, chunk, fields).items():
                held[key] = {name: _held(lead.get(f"{name}__c")) for name in names}
        return held


def sync_scores(
    warehouse: WarehouseConfig,
    client: SalesforceBulkClient,
    as_of: date,
    *,
    external_id: str = DEFAULT_EXTERNAL_ID,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dag_run_id: str | None = None,
    dry_run: bool = False,
    max_changes: int = DEFAULT_MAX_CHANGES,
    approve_changes: bool = False,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    concurrency: int = DEFAULT_CONCURRENCY,
    max_first_sync_leads: int = DEFAULT_FIRST_SYNC_MAX_LEADS,
) -> SyncResult:
    """Send the as-of date's changed scores to Salesforce (see ``engine.run_sync``)."""
    return run_sync(
        warehouse,
        SalesforceTarget(client, external_id=external_id, batch_size=batch_size),
        as_of,
        dag_run_id=dag_run_id,
        dry_run=dry_run,
        max_changes=max_changes,
        approve_changes=approve_changes,
        max_attempts=max_attempts,
        concurrency=concurrency,
        max_first_sync_leads=max_first_sync_leads,
    )
