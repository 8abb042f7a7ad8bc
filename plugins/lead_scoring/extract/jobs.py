"""The extract-and-load jobs: which window or files to read, and what state to keep.

Each job is one load batch (one transaction) and decides what to ask the source for:

- **contacts**: incrementally through search on ``lastmodifieddate`` in ``[watermark - overlap,
  run start]``; a full refresh through the list endpoint on the first run or when asked. The
  watermark becomes the run start when the batch commits. A contact changed while the run reads
  is stamped after the run start, so the next window sees it.
- **email events**: the legacy events log in windows (``LEAD_SCORING_EMAIL_WINDOW_DAYS``,
  default 7) from the watermark (or a lookback on the first run) to the run start.
- **web events**: the export's files that are new or changed since they were last read (a file
  manifest in ``lead_scoring_ops.loaded_files``), from a folder or an fsspec URL.

Re-running a logical interval (an Airflow retry, or clearing a past run) asks the source for the
same window or files as the first run of that interval did. Event rows of the earlier run are
replaced by the new ones. Contact versions are not deleted on a re-run: the CRM only has each
contact's current state, so versions it can no longer return would be lost; the versioned merge
makes the re-run add nothing that is already there instead.

The overlap (``LEAD_SCORING_EXTRACT_OVERLAP_MINUTES``, default 10) re-reads a few minutes before
the watermark: HubSpot's search index lags writes slightly, and the loads deduplicate anyway.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from lead_scoring.config import WarehouseConfig
from lead_scoring.crm.client import HubSpotClient
from lead_scoring.extract.hubspot import (
    CONTACT_PROPERTIES,
    HISTORY_PROPERTIES,
    contact_rows,
    email_event_rows,
    property_history_rows,
)
from lead_scoring.extract.prefetch import prefetched
from lead_scoring.extract.segment import EventFile, EventSource, web_event_rows
from lead_scoring.load.batch import (
    Interval,
    LoadResult,
    interval_batches,
    load_batch,
    previous_window,
    read_watermark,
)
from lead_scoring.load.tables import (
    CONTACT_PROPERTY_HISTORY,
    CONTACTS,
    EMAIL_EVENTS,
    WEB_EVENTS,
)
from lead_scoring.warehouse import OPS, RAW_ANALYTICS, connect, ensure_landing_zone

log = logging.getLogger(__name__)

CONTACTS_SOURCE = "hubspot.contacts"
HISTORY_SOURCE = "hubspot.contact_property_history"
EMAIL_EVENTS_SOURCE = "hubspot.email_events"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def overlap() -> timedelta:
    return timedelta(minutes=int(os.environ.get("LEAD_SCORING_EXTRACT_OVERLAP_MINUTES", "10")))


def _state(
    warehouse: WarehouseConfig, source: str, interval: Interval | None
) -> tuple[datetime | None, tuple[datetime, datetime, str] | None]:
    with connect(warehouse, autocommit=True) as conn:
        ensure_landing_zone(conn)
        watermark = read_watermark(conn, source)
        previous = previous_window(conn, source, interval) if interval else None
    return watermark, previous


# ---------------------------------------------------------------------- contacts
def extract_contacts(
    warehouse: WarehouseConfig,
    client: HubSpotClient,
    *,
    interval: Interval | None = None,
    full_refresh: bool = False,
    run_id: str | None = None,
    now: datetime | None = None,
) -> LoadResult:
    """Contacts changed since the watermark (or all of them) into ``raw_crm.contacts``."""
    run_start = now or datetime.now(UTC)
    watermark, previous = _state(warehouse, CONTACTS_SOURCE, interval)
    window_start: datetime | None
    if previous is not None and not full_refresh:
        window_start, window_end, mode = previous
        log.info(
            "contacts: re-running interval %s..%s with its window [%s, %s] (%s)",
            interval.start.isoformat() if interval else "?",
            interval.end.isoformat() if interval else "?",
            window_start.isoformat(),
            window_end.isoformat(),
            mode,
        )
    elif full_refresh or watermark is None:
        window_start, window_end, mode = None, run_start, "full_refresh"
        log.info(
            "contacts: full refresh through the list endpoint (%s)",
            "asked for" if full_refresh else "no watermark yet",
        )
    else:
        window_start, window_end, mode = watermark - overlap(), run_start, "incremental"
        log.info(
            "contacts: incremental, lastmodifieddate in [%s, %s]",
            window_start.isoformat(),
            window_end.isoformat(),
        )
    if mode == "full_refresh" or window_start is None:
        pages: Iterator[list[dict[str, Any]]] = client.iter_contact_pages(CONTACT_PROPERTIES)
    else:
        pages = client.search_contact_pages(
            CONTACT_PROPERTIES, modified_from=window_start, modified_to=window_end
        )
    return load_batch(
        warehouse,
        table=CONTACTS,
        source=CONTACTS_SOURCE,
        records=contact_rows(prefetched(pages, name="contacts-pages")),
        run_id=run_id,
        interval=interval,
        window=(window_start, window_end),
        mode=mode,
        watermark=window_end,
    )


def extract_property_history(
    warehouse: WarehouseConfig,
    client: HubSpotClient,
    *,
    interval: Interval | None = None,
    run_id: str | None = None,
) -> LoadResult:
    """Property history of every contact with a version loaded since the last history batch.

    Search cannot return history, so it is read by id (batch read, 50 per call) after the
    contacts load. The watermark is the newest contact version covered, so a failed or retried
    run reads the history of the same contacts again instead of skipping them.
    """
    with connect(warehouse, autocommit=True) as conn:
        ensure_landing_zone(conn)
        watermark = read_watermark(conn, HISTORY_SOURCE)
        rows = conn.execute(
            "select contact_id, max(loaded_at) from raw_crm.contacts "
            "where loaded_at > %s and not archived group by contact_id order by contact_id",
            (watermark or EPOCH,),
        ).fetchall()
    ids = [row[0] for row in rows]
    covered = max((row[1] for row in rows), default=watermark)
    log.info("property history: %d contacts changed since %s", len(ids), watermark or "the start")
    return load_batch(
        warehouse,
        table=CONTACT_PROPERTY_HISTORY,
        source=HISTORY_SOURCE,
        records=property_history_rows(
            prefetched(client.iter_contact_history(ids, HISTORY_PROPERTIES), name="history-pages")
        ),
        run_id=run_id,
        interval=interval,
        mode="by_id",
        watermark=covered,
    )


# ---------------------------------------------------------------------- email events
def email_window() -> timedelta:
    return timedelta(days=float(os.environ.get("LEAD_SCORING_EMAIL_WINDOW_DAYS", "7")))


def _email_windows(start: datetime, end: datetime) -> Iterator[tuple[int, int]]:
    """Epoch-ms windows covering ``[start, end]`` without overlapping."""
    step = email_window()
    cursor = start
    while cursor <= end:
        upper = min(cursor + step, end)
        yield (
            int(cursor.timestamp() * 1000),
            int(upper.timestamp() * 1000) - (1 if upper < end else 0),
        )
        if upper >= end:
            return
        cursor = upper


def extract_email_events(
    warehouse: WarehouseConfig,
    client: HubSpotClient,
    *,
    interval: Interval | None = None,
    lookback: timedelta = timedelta(days=400),
    run_id: str | None = None,
    now: datetime | None = None,
) -> LoadResult:
    """Marketing-email events since the watermark into ``raw_crm.email_events``."""
    run_start = now or datetime.now(UTC)
    watermark, previous = _state(warehouse, EMAIL_EVENTS_SOURCE, interval)
    if previous is not None:
        window_start, window_end, mode = previous
    elif watermark is None:
        window_start, window_end, mode = run_start - lookback, run_start, "initial"
    else:
        window_start, window_end, mode = watermark - overlap(), run_start, "incremental"
    windows = list(_email_windows(window_start, window_end))
    log.info(
        "email events: %s, [%s, %s] in %d window(s)",
        mode,
        window_start.isoformat(),
        window_end.isoformat(),
        len(windows),
    )

    def pages() -> Iterator[list[dict[str, Any]]]:
        started = time.monotonic()
        events = page_count = 0
        for number, (start_ms, end_ms) in enumerate(windows, start=1):
            for page in client.iter_email_event_pages(start_ms, end_ms):
                page_count += 1
                events += len(page)
                yield page
            if number % 30 == 0 or number == len(windows):
                rate = events / max(time.monotonic() - started, 1e-6)
                log.info(
                    "email events: %d/%d windows, %d pages, %d events (%.0f events/s)",
                    number,
                    len(windows),
                    page_count,
                    events,
                    rate,
                )

    return load_batch(
        warehouse,
        table=EMAIL_EVENTS,
        source=EMAIL_EVENTS_SOURCE,
        records=email_event_rows(prefetched(pages(), name="email-pages"), now=run_start),
        run_id=run_id,
        interval=interval,
        window=(window_start, window_end),
        mode=mode,
        replace_interval=interval is not None,
        watermark=window_end,
    )


# ---------------------------------------------------------------------- web events
def web_source_name(fmt: str) -> str:
    return f"{fmt}.web_events"


def _files_to_read(
    conn: psycopg.Connection[Any],
    source: EventSource,
    name: str,
    interval: Interval | None,
    full_refresh: bool,
) -> tuple[list[EventFile], str]:
    files = source.files()
    if full_refresh:
        return files, "full_refresh"
    if interval is not None:
        earlier = interval_batches(conn, name, interval)
        if earlier:
            # Every file that gave this interval a row, an event or a quarantined line, and
            # every file it recorded as read: the re-run reads all of them again.
            used = {
                row[0]
                for row in conn.execute(
                    f"select path from {OPS}.loaded_files where source = %s "
                    "and batch_id = any(%s) "
                    f"union select source_file from {RAW_ANALYTICS}.web_events "
                    "where batch_id = any(%s) "
                    f"union select source_file from {RAW_ANALYTICS}.quarantine "
                    "where batch_id = any(%s)",
                    (name, earlier, earlier, earlier),
                )
            }
            gone = sorted(used - {f.name for f in files})
            if gone:
                # Replacing the interval's rows would delete the events of these files with
                # nothing to load them from again.
                raise FileNotFoundError(
                    f"cannot re-run interval [{interval.start.isoformat()}, "
                    f"{interval.end.isoformat()}): {len(gone)} file(s) it loaded are no longer "
                    f"in {source.describe()} (e.g. {', '.join(gone[:3])}); its rows are kept. "
                    "Restore the files, or leave this interval as it is"
                )
            log.info("web events: re-run of the interval reads its %d file(s) again", len(used))
            return [f for f in files if f.name in used], "rerun"
    known = dict(
        conn.execute(
            f"select path, fingerprint from {OPS}.loaded_files where source = %s", (name,)
        ).fetchall()
    )
    fresh = [f for f in files if known.get(f.name) != f.fingerprint]
    log.info(
        "web events: %d file(s) in the export, %d new or changed since last read",
        len(files),
        len(fresh),
    )
    return fresh, "incremental"


def load_web_events(
    warehouse: WarehouseConfig,
    location: str | Path,
    *,
    fmt: str = "segment",
    interval: Interval | None = None,
    full_refresh: bool = False,
    run_id: str | None = None,
    now: datetime | None = None,
) -> LoadResult:
    """New or changed export files (Segment JSONL or GA4 rows) into ``raw_analytics.web_events``."""
    run_start = now or datetime.now(UTC)
    source = EventSource(location, fmt)
    name = web_source_name(fmt)
    with connect(warehouse, autocommit=True) as conn:
        ensure_landing_zone(conn)
        files, mode = _files_to_read(conn, source, name, interval, full_refresh)

    def record_files(conn: psycopg.Connection[Any], batch_id: str) -> None:
        with conn.cursor() as cur:
            cur.executemany(
                f"insert into {OPS}.loaded_files (source, path, fingerprint, batch_id, loaded_at) "
                "values (%s, %s, %s, %s, now()) on conflict (source, path) do update set "
                "fingerprint = excluded.fingerprint, batch_id = excluded.batch_id, "
                "loaded_at = excluded.loaded_at",
                [(name, f.name, f.fingerprint, batch_id) for f in files],
            )

    return load_batch(
        warehouse,
        table=WEB_EVENTS,
        source=name,
        records=web_event_rows(source, files=files, now=run_start),
        run_id=run_id,
        interval=interval,
        window=(None, run_start),
        mode=mode,
        replace_interval=interval is not None and mode == "rerun",
        watermark=run_start,
        in_transaction=record_files,
    )
