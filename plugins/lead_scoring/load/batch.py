"""Bulk loads into the raw tables: COPY into a temporary table, then one merge, in one transaction.

Every load is a *batch*: a row in ``lead_scoring_ops.load_batches`` (written first, in its own
transaction, so a crashed load is still visible as ``running``/``failed``), and a batch id and
load time on every raw and quarantine row it adds. The COPY, the merge into the raw table, the
quarantine rows and the batch's ``committed`` status land together or not at all: a killed load
leaves the previous state, never half of the new one.

Merges skip what is already there (same key), which is what makes re-running a load idempotent.
A load may also name its *logical interval* (the Airflow data interval): its rows carry it, and
with ``replace_interval`` the rows an earlier committed batch of the same source and interval
added are deleted in the same transaction, so re-running an interval replaces its rows. A load
may advance its source's watermark (``lead_scoring_ops.extract_state``), again in the same
transaction: the watermark never runs ahead of committed data.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from lead_scoring.config import WarehouseConfig
from lead_scoring.warehouse import OPS, connect, ensure_landing_zone

log = logging.getLogger(__name__)
PROGRESS_EVERY_ROWS = 50_000


class Rejected(NamedTuple):
    """A record that cannot be loaded: it goes to quarantine with why, and as it came."""

    reason: str
    detail: str
    raw_payload: str
    source_file: str = ""
    source_line: int = 0


@dataclass
class LoadResult:
    batch_id: str
    source: str
    rows_read: int = 0
    rows_inserted: int = 0
    rows_quarantined: int = 0
    rows_replaced: int = 0
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def rows_duplicate(self) -> int:
        """Valid rows already in the warehouse (a re-run or an overlapping extract)."""
        return self.rows_read - self.rows_quarantined - self.rows_inserted

    def summary(self) -> str:
        reasons = (
            ", ".join(f"{r}={n}" for r, n in sorted(self.quarantine_reasons.items())) or "none"
        )
        replaced = (
            f", replaced {self.rows_replaced} from an earlier run of this interval"
            if self.rows_replaced
            else ""
        )
        return (
            f"{self.source}: read {self.rows_read}, inserted {self.rows_inserted}, "
            f"already present {self.rows_duplicate}, quarantined {self.rows_quarantined} "
            f"({reasons}){replaced} in {self.seconds:.1f}s [batch {self.batch_id}]"
        )


@dataclass(frozen=True)
class Interval:
    """A logical interval ``[start, end)``: what an Airflow run is responsible for."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("interval bounds must be timezone-aware")
        if self.end < self.start:
            raise ValueError(f"interval ends ({self.end}) before it starts ({self.start})")


@dataclass(frozen=True)
class RawTable:
    """A raw table, the columns the loader fills, and how new rows merge into it."""

    schema: str
    name: str
    columns: tuple[str, ...]
    merge: str  # SQL selecting from {staging} the rows to insert into {target}
    # Tables the merge also writes to, keyed by batch_id: a re-run's delete covers them too.
    companions: tuple[str, ...] = ()

    @property
    def target(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(self.name))


def payload_hash(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


def _copy(
    conn: psycopg.Connection[Any],
    staging: str,
    like: sql.Composable,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    source: str,
) -> int:
    conn.execute(
        sql.SQL("create temp table {} (like {} including defaults) on commit drop").format(
            sql.Identifier(staging), like
        )
    )
    copy_sql = sql.SQL("copy {} ({}) from stdin").format(
        sql.Identifier(staging), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    count = 0
    started = time.monotonic()
    # The queued writer sends on a thread of its own: this thread goes on parsing and
    # formatting the next rows while the server takes the last ones.
    with conn.cursor() as cur, cur.copy(copy_sql, writer=QueuedLibpqWriter(cur)) as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
            if count % PROGRESS_EVERY_ROWS == 0:
                rate = count / max(time.monotonic() - started, 1e-6)
                log.info("%s: %d rows copied (%.0f rows/s)", source, count, rate)
    return count


def load_batch(
    config: WarehouseConfig,
    *,
    table: RawTable,
    source: str,
    records: Iterable[Sequence[Any] | Rejected],
    run_id: str | None = None,
    interval: Interval | None = None,
    window: tuple[datetime | None, datetime | None] = (None, None),
    mode: str = "append",
    replace_interval: bool = False,
    watermark: datetime | None = None,
    in_transaction: Callable[[psycopg.Connection[Any], str], None] | None = None,
) -> LoadResult:
    """Load ``records`` (rows in ``table.columns`` order, or ``Rejected``) as one batch.

    Each row is suffixed with the batch id, load time and logical interval, so
    ``table.columns`` must end with ``batch_id, loaded_at, interval_start, interval_end`` and
    the rows carry the other columns. ``window`` and ``mode`` are recorded on the batch (what
    was asked of the source). ``replace_interval`` deletes the rows of earlier committed batches
    of this source and ``interval``; ``watermark`` advances the source's watermark (never moves
    it back); ``in_transaction(conn, batch_id)`` adds the caller's own writes to the batch's
    transaction. All of it commits together, or none of it does.
    """
    if replace_interval and interval is None:
        raise ValueError("replace_interval needs an interval")
    batch_id = str(uuid.uuid4())
    loaded_at = datetime.now(UTC)
    bounds = (interval.start, interval.end) if interval else (None, None)
    result = LoadResult(batch_id=batch_id, source=source)
    started = time.monotonic()
    rejected: list[Rejected] = []

    def valid_rows() -> Iterable[Sequence[Any]]:
        for record in records:
            result.rows_read += 1
            if isinstance(record, Rejected):
                rejected.append(record)
                continue
            yield (*record, batch_id, loaded_at, *bounds)

    with connect(config, autocommit=True) as control:
        ensure_landing_zone(control)
        _claim_source(control, source)
        control.execute(
            f"insert into {OPS}.load_batches (batch_id, source, run_id, started_at, status, "
            "interval_start, interval_end, window_start, window_end, mode) "
            "values (%s, %s, %s, %s, 'running', %s, %s, %s, %s, %s)",
            (batch_id, source, run_id, loaded_at, *bounds, *window, mode),
        )
        try:
            with connect(config) as conn, conn.transaction():
                if replace_interval and interval is not None:
                    result.rows_replaced = _delete_interval(conn, table, source, interval, batch_id)
                _copy(conn, "staging_rows", table.target, table.columns, valid_rows(), source)
                merged = conn.execute(
                    sql.SQL(table.merge).format(
                        target=table.target, staging=sql.Identifier("staging_rows")
                    )
                )
                result.rows_inserted = merged.rowcount
                result.rows_quarantined = len(rejected)
                result.quarantine_reasons = Counter(r.reason for r in rejected)
                if rejected:
                    _quarantine(conn, table.schema, source, rejected, batch_id, loaded_at, bounds)
                if in_transaction is not None:
                    in_transaction(conn, batch_id)
                if watermark is not None:
                    _advance_watermark(conn, source, watermark, batch_id)
                result.seconds = time.monotonic() - started
                conn.execute(
                    f"update {OPS}.load_batches set status = 'committed', finished_at = now(), "
                    "rows_read = %s, rows_inserted = %s, rows_duplicate = %s, "
                    "rows_quarantined = %s, rows_replaced = %s where batch_id = %s",
                    (
                        result.rows_read,
                        result.rows_inserted,
                        result.rows_duplicate,
                        result.rows_quarantined,
                        result.rows_replaced,
                        batch_id,
                    ),
                )
        except BaseException as exc:
            control.execute(
                f"update {OPS}.load_batches set status = 'failed', finished_at = now(), error = %s "
                "where batch_id = %s",
                (f"{type(exc).__name__}: {exc}"[:2000], batch_id),
            )
            raise
    log.info("%s", result.summary())
    return result


def _claim_source(control: psycopg.Connection[Any], source: str) -> None:
    """Hold the source's load lock for this session (one load per source at a time; a killed
    process's session ends and frees it), then mark batches of the source still ``running`` as
    failed: with the lock held, nobody is loading them any more."""
    control.execute("select pg_advisory_lock(hashtext(%s))", (f"lead_scoring.load:{source}",))
    abandoned = control.execute(
        f"update {OPS}.load_batches set status = 'failed', finished_at = now(), "
        "error = 'abandoned: the process loading it stopped before it committed' "
        "where source = %s and status = 'running'",
        (source,),
    ).rowcount
    if abandoned:
        log.warning(
            "%s: %d earlier batch(es) never committed (process killed?); marked failed, "
            "their rows were rolled back by PostgreSQL",
            source,
            abandoned,
        )


def _delete_interval(
    conn: psycopg.Connection[Any], table: RawTable, source: str, interval: Interval, batch_id: str
) -> int:
    """Delete what earlier committed batches of this source and interval added; mark them."""
    earlier = interval_batches(conn, source, interval, lock=True)
    if not earlier:
        return 0
    deleted = conn.execute(
        sql.SQL("delete from {} where batch_id = any(%s)").format(table.target), (earlier,)
    ).rowcount
    for companion in table.companions:
        schema, name = companion.split(".")
        conn.execute(
            sql.SQL("delete from {}.{} where batch_id = any(%s)").format(
                sql.Identifier(schema), sql.Identifier(name)
            ),
            (earlier,),
        )
    conn.execute(
        sql.SQL("delete from {}.quarantine where batch_id = any(%s)").format(
            sql.Identifier(table.schema)
        ),
        (earlier,),
    )
    conn.execute(
        f"update {OPS}.load_batches set replaced_by = %s where batch_id = any(%s)",
        (batch_id, earlier),
    )
    log.info(
        "%s: re-run of interval [%s, %s): %d row(s) of %d earlier batch(es) replaced",
        source,
        interval.start.isoformat(),
        interval.end.isoformat(),
        deleted,
        len(earlier),
    )
    return deleted


def interval_batches(
    conn: psycopg.Connection[Any], source: str, interval: Interval, *, lock: bool = False
) -> list[str]:
    """Ids of the committed, not yet replaced batches of this source and interval."""
    rows = conn.execute(
        f"select batch_id from {OPS}.load_batches where source = %s and status = 'committed' "
        "and interval_start = %s and interval_end = %s and replaced_by is null"
        + (" for update" if lock else ""),
        (source, interval.start, interval.end),
    )
    return [row[0] for row in rows]


def _advance_watermark(
    conn: psycopg.Connection[Any], source: str, watermark: datetime, batch_id: str
) -> None:
    conn.execute(
        f"insert into {OPS}.extract_state (source, watermark, batch_id, updated_at) "
        "values (%s, %s, %s, now()) on conflict (source) do update set "
        "watermark = greatest(extract_state.watermark, excluded.watermark), "
        "batch_id = excluded.batch_id, updated_at = excluded.updated_at",
        (source, watermark, batch_id),
    )


def read_watermark(conn: psycopg.Connection[Any], source: str) -> datetime | None:
    """The source's committed watermark, or None before its first load."""
    row = conn.execute(
        f"select watermark from {OPS}.extract_state where source = %s", (source,)
    ).fetchone()
    return None if row is None else row[0]


def previous_window(
    conn: psycopg.Connection[Any], source: str, interval: Interval
) -> tuple[datetime, datetime, str] | None:
    """Window and mode of the latest committed batch of this source and interval (a re-run
    extracts the same window again), or None when the interval was never loaded."""
    row = conn.execute(
        f"select window_start, window_end, mode from {OPS}.load_batches "
        "where source = %s and status = 'committed' and interval_start = %s "
        "and interval_end = %s and window_start is not null and window_end is not null "
        "order by started_at desc limit 1",
        (source, interval.start, interval.end),
    ).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def _storable(text: str) -> str:
    """Text PostgreSQL can hold, for a quarantined payload: NULs and lone surrogates (the
    reasons some records are quarantined) are written as their JSON escapes."""
    text = text.replace("\x00", "\\u0000")
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _quarantine(
    conn: psycopg.Connection[Any],
    schema: str,
    source: str,
    rejected: Sequence[Rejected],
    batch_id: str,
    loaded_at: datetime,
    bounds: tuple[datetime | None, datetime | None],
) -> None:
    target = sql.SQL("{}.quarantine").format(sql.Identifier(schema))
    columns = (
        "source", "reason", "detail", "raw_payload", "payload_hash",
        "source_file", "source_line", "batch_id", "loaded_at", "interval_start", "interval_end",
    )  # fmt: skip
    rows = (
        (
            source,
            r.reason,
            _storable(r.detail),
            _storable(r.raw_payload),
            payload_hash(r.raw_payload),
            r.source_file,
            r.source_line,
            batch_id,
            loaded_at,
            *bounds,
        )
        for r in rejected
    )
    _copy(conn, "staging_quarantine", target, columns, rows, f"{source} quarantine")
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    conn.execute(
        sql.SQL(
            "insert into {target} ({cols}) select {cols} from staging_quarantine "
            "on conflict (source, source_file, source_line, payload_hash) do nothing"
        ).format(target=target, cols=cols)
    )
    for reason, count in sorted(Counter(r.reason for r in rejected).items()):
        log.warning(
            "%s: %d record(s) quarantined in %s.quarantine, reason %s",
            source,
            count,
            schema,
            reason,
        )
