"""What each task of the ``lead_scoring`` DAG does, kept out of the DAG file.

Each function resolves its connections through Airflow (``warehouse``, ``crm``), calls the part
of the package that does the work, logs a one-line summary and returns a small JSON-able dict
(it becomes the task's XCom; it never holds a secret).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from lead_scoring.config import ConfigError, crm_config, warehouse_config

log = logging.getLogger(__name__)

EMAIL_LOOKBACK_DAYS = int(os.environ.get("LEAD_SCORING_EMAIL_LOOKBACK_DAYS", "400"))


def parse_as_of(value: str | date | None) -> date:
    """The as-of date from a DAG param or the logical date (``YYYY-MM-DD``)."""
    if isinstance(value, date):
        return value
    if not value:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ConfigError(f"as_of must be a date like 2024-06-01, got {value!r}") from None


def events_path(param: str | None) -> Path:
    """Where the Segment export lives: the DAG param, else ``LEAD_SCORING_EVENTS_PATH``."""
    raw = param or os.environ.get("LEAD_SCORING_EVENTS_PATH")
    if not raw:
        raise ConfigError(
            "no web events folder: set the DAG param events_path or LEAD_SCORING_EVENTS_PATH"
        )
    return Path(raw).expanduser()


def extract_contacts(*, run_id: str | None) -> dict[str, Any]:
    """All contacts through the list endpoint into ``raw_crm.contacts``."""
    from lead_scoring.crm.client import HubSpotClient
    from lead_scoring.extract.hubspot import CONTACT_PROPERTIES, contact_rows
    from lead_scoring.load import CONTACTS, load_batch

    crm = crm_config(via_airflow=True)
    with HubSpotClient(crm.base_url, crm.token) as client:
        result = load_batch(
            warehouse_config(via_airflow=True),
            table=CONTACTS,
            source="hubspot.contacts",
            records=contact_rows(client.iter_contact_pages(CONTACT_PROPERTIES)),
            run_id=run_id,
        )
    return _load_summary(result)


def extract_email_events(
    *, run_id: str | None, lookback_days: int = EMAIL_LOOKBACK_DAYS
) -> dict[str, Any]:
    """Marketing-email events of the last ``lookback_days`` into ``raw_crm.email_events``."""
    from lead_scoring.crm.client import HubSpotClient
    from lead_scoring.extract.hubspot import email_event_rows
    from lead_scoring.load import EMAIL_EVENTS, load_batch

    end = datetime.now(UTC)
    start = end - timedelta(days=lookback_days)
    crm = crm_config(via_airflow=True)
    with HubSpotClient(crm.base_url, crm.token) as client:
        pages = client.iter_email_event_pages(
            int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        )
        result = load_batch(
            warehouse_config(via_airflow=True),
            table=EMAIL_EVENTS,
            source="hubspot.email_events",
            records=email_event_rows(pages),
            run_id=run_id,
        )
    return _load_summary(result)


def load_web_events(*, run_id: str | None, path: str | None) -> dict[str, Any]:
    """Every Segment JSONL file under the events folder into ``raw_analytics.web_events``."""
    from lead_scoring.extract.segment import web_event_rows
    from lead_scoring.load import WEB_EVENTS, load_batch

    result = load_batch(
        warehouse_config(via_airflow=True),
        table=WEB_EVENTS,
        source="segment.web_events",
        records=web_event_rows(events_path(path)),
        run_id=run_id,
    )
    return _load_summary(result)


def check_scores(*, as_of: str | None) -> dict[str, Any]:
    """The score gate: fails the task (and so blocks the sync) when an expectation fails."""
    from lead_scoring.quality.gates import score_gate

    result = score_gate(warehouse_config(via_airflow=True), parse_as_of(as_of))
    log.info("Data Docs: %s", result.data_docs)
    return asdict(result)


def sync_scores(*, run_id: str | None, as_of: str | None, dry_run: bool = False) -> dict[str, Any]:
    """Send changed scores to the CRM."""
    from lead_scoring.crm.client import HubSpotClient
    from lead_scoring.sync.hubspot import sync_scores as run_sync

    crm = crm_config(via_airflow=True)
    with HubSpotClient(crm.base_url, crm.token) as client:
        result = run_sync(
            warehouse_config(via_airflow=True),
            client,
            parse_as_of(as_of),
            dag_run_id=run_id,
            dry_run=dry_run,
        )
    summary = asdict(result)
    summary["as_of"] = result.as_of.isoformat()
    return summary


def _load_summary(result: Any) -> dict[str, Any]:
    return {
        "batch_id": result.batch_id,
        "source": result.source,
        "rows_read": result.rows_read,
        "rows_inserted": result.rows_inserted,
        "rows_duplicate": result.rows_duplicate,
        "rows_quarantined": result.rows_quarantined,
        "quarantine_reasons": dict(result.quarantine_reasons),
        "seconds": round(result.seconds, 3),
    }


def on_failure(context: dict[str, Any]) -> None:
    """Failure callback: one clear log line naming the task, the run and the error."""
    ti = context.get("task_instance")
    log.error(
        "lead_scoring task %s failed in run %s: %s",
        getattr(ti, "task_id", "?"),
        context.get("run_id"),
        context.get("exception"),
    )
