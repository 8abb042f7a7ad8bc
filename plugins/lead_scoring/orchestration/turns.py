"""Runs of ``lead_scoring`` take turns from the raw gate to the end.

Two runs must never build at once: dbt rebuilds the same intermediate tables for each run's
as-of date, the gates replace their views, and the sync diffs against one ledger, so one run
would score from the other's tables. ``max_active_runs=1`` keeps scheduled runs apart, but a
backfill runs up to ``--max-active-runs`` (10 by default) of its own runs at once, beside the
scheduled ones. Extraction is safe in parallel (one load per source at a time, by advisory
lock); everything after it is not.

So the DAG's ``take_turn`` sensor holds a lease in the warehouse (``lead_scoring_ops.run_lease``)
before the raw gate, and ``publish`` hands it back. A run also lets every earlier run (by
logical date) that is still running go first, so a backfill scores its days in order and the
CRM ends with the newest. A run that failed does not hand the lease back (its other branches
may still be building); once it has ended (failed, killed, marked failed in the UI), its lease
is stale and the next run takes it over, so a crash never blocks the job. The sensor waits in
reschedule mode: a waiting run holds no worker slot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from lead_scoring.config import WarehouseConfig
from lead_scoring.warehouse import OPS, connect

log = logging.getLogger(__name__)

LEASE = "lead_scoring"

DDL = f"""
create schema if not exists {OPS};
create table if not exists {OPS}.run_lease (
    lease text primary key,
    dag_run_id text,
    acquired_at timestamptz
);
"""


def take_turn(
    warehouse: WarehouseConfig, run_id: str, is_running: Callable[[str], bool]
) -> str | None:
    """Take the lease for ``run_id``; returns None when it is ours, else the run holding it.
    ``is_running(run_id)`` says whether the holder still runs (else its lease is taken over)."""
    with connect(warehouse) as conn:
        conn.execute(DDL)
        conn.execute(
            f"insert into {OPS}.run_lease (lease) values (%s) on conflict do nothing", (LEASE,)
        )
        row = conn.execute(
            f"select dag_run_id from {OPS}.run_lease where lease = %s for update", (LEASE,)
        ).fetchone()
        holder = row[0] if row else None
        if holder and holder != run_id and is_running(holder):
            return str(holder)
        if holder and holder != run_id:
            log.warning("run %s held the lease but no longer runs: taking it over", holder)
        conn.execute(
            f"update {OPS}.run_lease set dag_run_id = %s, acquired_at = now() where lease = %s",
            (run_id, LEASE),
        )
    return None


def hand_back(warehouse: WarehouseConfig, run_id: str) -> bool:
    """Give the lease back if ``run_id`` holds it; returns whether it did."""
    with connect(warehouse) as conn:
        conn.execute(DDL)
        done = conn.execute(
            f"update {OPS}.run_lease set dag_run_id = null, acquired_at = null "
            "where lease = %s and dag_run_id = %s",
            (LEASE, run_id),
        )
        return done.rowcount > 0
