"""The raw gate: real Great Expectations on the real warehouse, from the committed context.

Each test lands one run's loads in the real landing tables, poisons them in one way, and runs
the ``raw_gate`` checkpoint: the named expectation must fail (and only a good batch passes).
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from lead_scoring.config import ConfigError, WarehouseConfig, gx_context_dir
from lead_scoring.quality.gates import GateFailed, QualitySettings, raw_gate
from lead_scoring.warehouse import ensure_landing_zone

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)
RUN = "scheduled__2026-06-01T00:00:00+00:00"
SETTINGS = QualitySettings()

Rows = dict[str, list[dict[str, object]]]


@pytest.fixture
def context_dir(tmp_path: Path) -> Path:
    """A copy of the committed file context, so Data Docs of a test stay out of the checkout."""
    target = tmp_path / "expectations"
    shutil.copytree(gx_context_dir(), target, ignore=shutil.ignore_patterns("uncommitted"))
    return target


def good() -> Rows:
    hour = NOW - timedelta(hours=1)
    return {
        "contacts": [
            {"contact_id": "1", "email": "ann@example.com", "stage": "lead"},
            {"contact_id": "2", "email": "bob@example.org", "stage": "customer"},
            {"contact_id": "3", "email": None, "stage": None},  # both optional
        ],
        "email_events": [
            {"event_id": "e1", "event_type": "OPEN", "at": hour},
            {"event_id": "e2", "event_type": "CLICK", "at": NOW - timedelta(days=300)},
        ],
        "web_events": [
            {"message_id": "m1", "event_type": "page", "at": hour},
            {"message_id": "m2", "event_type": "track", "at": NOW - timedelta(days=20)},
            {"message_id": "m3", "event_type": "identify", "at": NOW + timedelta(hours=3)},
        ],
        "loads": [
            {"source": "hubspot.contacts", "read": 100, "quarantined": 2},
            {"source": "segment.web_events", "read": 1000, "quarantined": 50},
        ],
    }


def land(
    warehouse: WarehouseConfig, rows: Rows, *, run_id: str = RUN, loaded_at: datetime = NOW
) -> None:
    """One committed load per source of ``run_id`` holding ``rows``."""
    with psycopg.connect(warehouse.conninfo()) as conn:
        ensure_landing_zone(conn)
        batches: dict[str, str] = {}

        def batch(source: str, read: int = 0, quarantined: int = 0) -> str:
            if source not in batches:
                batches[source] = str(uuid.uuid4())
                conn.execute(
                    "insert into lead_scoring_ops.load_batches (batch_id, source, run_id, "
                    "started_at, finished_at, status, rows_read, rows_quarantined) "
                    "values (%s, %s, %s, %s, %s, 'committed', %s, %s)",
                    (batches[source], source, run_id, loaded_at, loaded_at, read, quarantined),
                )
            return batches[source]

        for load in rows["loads"]:
            batch(str(load["source"]), int(load["read"]), int(load["quarantined"]))  # type: ignore[call-overload]
        for i, c in enumerate(rows["contacts"]):
            properties = {"email": c["email"], "lifecyclestage": c["stage"]}
            conn.execute(
                "insert into raw_crm.contacts (contact_id, updated_at, properties, "
                "properties_hash, archived, raw, batch_id, loaded_at) "
                "values (%s, %s, %s, 'h', false, '{}', %s, %s)",
                (
                    c["contact_id"],
                    NOW - timedelta(minutes=i),
                    json.dumps(properties),
                    batch("hubspot.contacts"),
                    loaded_at,
                ),
            )
        for e in rows["email_events"]:
            conn.execute(
                "insert into raw_crm.email_events (event_id, event_type, created_at, raw, "
                "batch_id, loaded_at) values (%s, %s, %s, '{}', %s, %s)",
                (e["event_id"], e["event_type"], e["at"], batch("hubspot.email_events"), loaded_at),
            )
        for i, w in enumerate(rows["web_events"]):
            conn.execute(
                "insert into raw_analytics.web_events (message_id, event_type, event_timestamp, "
                "raw, source_file, source_line, batch_id, loaded_at) "
                "values (%s, %s, %s, '{}', 'day.jsonl', %s, %s, %s)",
                (
                    w["message_id"],
                    w["event_type"],
                    w["at"],
                    i + 1,
                    batch("segment.web_events"),
                    loaded_at,
                ),
            )


def drop_keys(warehouse: WarehouseConfig) -> None:
    """Landing tables as another loader (a warehouse destination of Segment, say) creates them:
    no primary keys. The gate's own checks must then catch what the keys would have."""
    with psycopg.connect(warehouse.conninfo()) as conn:
        ensure_landing_zone(conn)
        for table, key in (
            ("raw_crm.contacts", "contact_id"),
            ("raw_crm.email_events", "event_id"),
            ("raw_analytics.web_events", "message_id"),
        ):
            name = table.split(".")[1]
            conn.execute(f"alter table {table} drop constraint {name}_pkey")
            conn.execute(f"alter table {table} alter column {key} drop not null")


def test_good_loads_pass_and_data_docs_are_built(
    warehouse: WarehouseConfig, context_dir: Path
) -> None:
    land(warehouse, good())
    result = raw_gate(warehouse, run_id=RUN, context_dir=context_dir)
    assert result.success, result.failures
    assert result.failures == []
    assert result.warnings == []
    assert result.evaluated == 17
    assert len(result.scope["batch_ids"]) == 3
    assert result.data_docs
    assert Path(result.data_docs.removeprefix("file://")).exists()
    with psycopg.connect(warehouse.conninfo()) as conn:
        kept = conn.execute(
            "select checkpoint, run_id, passed from lead_scoring_ops.quality_gate_runs"
        ).fetchall()
    assert kept == [("raw_gate", RUN, True)]


def edit(table: str, index: int, **changes: object) -> Callable[[WarehouseConfig, Rows], Rows]:
    def apply(_: WarehouseConfig, rows: Rows) -> Rows:
        rows[table][index] = {**rows[table][index], **changes}
        return rows

    return apply


def add(table: str, row: dict[str, object], *, keyless: bool = False) -> Callable[..., Rows]:
    def apply(warehouse: WarehouseConfig, rows: Rows) -> Rows:
        if keyless:
            drop_keys(warehouse)
        rows[table].append(row)
        return rows

    return apply


@pytest.mark.parametrize(
    ("poison", "expected"),
    [
        # contacts: a second version of contact 1 in the same load
        (
            add("contacts", {"contact_id": "1", "email": "a@b.co", "stage": "lead"}),
            "contacts.id_unique",
        ),
        (
            add("contacts", {"contact_id": None, "email": "x@y.io", "stage": "lead"}, keyless=True),
            "contacts.id_not_null",
        ),
        (edit("contacts", 0, email="ann(at)example.com"), "contacts.email_well_formed"),
        (edit("contacts", 1, email="two@@example.com"), "contacts.email_well_formed"),
        (edit("contacts", 1, stage="hotprospect"), "contacts.lifecycle_stage_known"),
        # email events
        (
            add("email_events", {"event_id": "e1", "event_type": "OPEN", "at": NOW}, keyless=True),
            "email_events.id_unique",
        ),
        (
            add("email_events", {"event_id": None, "event_type": "OPEN", "at": NOW}, keyless=True),
            "email_events.id_not_null",
        ),
        (edit("email_events", 0, event_type="LIKED"), "email_events.type_known"),
        (edit("email_events", 0, at=NOW + timedelta(days=3)), "email_events.timestamp_plausible"),
        (
            edit("email_events", 1, at=datetime(1970, 1, 1, tzinfo=UTC)),
            "email_events.timestamp_plausible",
        ),
        # web events
        (
            add("web_events", {"message_id": "m1", "event_type": "page", "at": NOW}, keyless=True),
            "web_events.id_unique",
        ),
        (
            add("web_events", {"message_id": None, "event_type": "page", "at": NOW}, keyless=True),
            "web_events.id_not_null",
        ),
        (edit("web_events", 1, event_type="pageview"), "web_events.type_known"),
        (edit("web_events", 1, at=NOW + timedelta(days=2)), "web_events.timestamp_plausible"),
        (edit("web_events", 1, at=NOW - timedelta(days=4000)), "web_events.timestamp_plausible"),
        # the loads themselves
        (edit("loads", 1, quarantined=51), "loads.quarantine_share"),  # 5.1% > 5%
    ],
)
def test_each_expectation_fails_on_a_crafted_bad_batch(
    warehouse: WarehouseConfig,
    context_dir: Path,
    poison: Callable[[WarehouseConfig, Rows], Rows],
    expected: str,
) -> None:
    land(warehouse, poison(warehouse, good()))
    with pytest.raises(GateFailed) as failure:
        raw_gate(warehouse, run_id=RUN, context_dir=context_dir)
    failures = failure.value.result.failures
    assert [f.split(":")[0] for f in failures] == [expected], failures
    with psycopg.connect(warehouse.conninfo()) as conn:
        kept = conn.execute(
            "select passed, failures from lead_scoring_ops.quality_gate_runs"
        ).fetchall()
    assert len(kept) == 1
    assert kept[0][0] is False
    assert kept[0][1][0].startswith(expected)


def test_stale_events_fail_freshness(warehouse: WarehouseConfig, context_dir: Path) -> None:
    rows = good()
    for event in rows["web_events"] + rows["email_events"]:
        event["at"] = NOW - timedelta(days=5)
    land(warehouse, rows)
    with pytest.raises(GateFailed) as failure:
        raw_gate(warehouse, run_id=RUN, context_dir=context_dir)
    assert [f.split(":")[0] for f in failure.value.result.failures] == [
        "freshness.web_events"
    ]  # five days without a web event is stale; without an email, it is not
    # Measured from the end of the run's interval, a backfill of that day is fresh.
    result = raw_gate(
        warehouse, run_id=RUN, reference=NOW - timedelta(days=4), context_dir=context_dir
    )
    assert result.success


def test_email_goes_stale_after_three_weeks(warehouse: WarehouseConfig, context_dir: Path) -> None:
    rows = good()
    for event in rows["email_events"]:
        event["at"] = NOW - timedelta(days=22)
    land(warehouse, rows)
    with pytest.raises(GateFailed) as failure:
        raw_gate(warehouse, run_id=RUN, context_dir=context_dir)
    assert [f.split(":")[0] for f in failure.value.result.failures] == ["freshness.email_events"]


def test_the_gate_judges_only_its_own_run(warehouse: WarehouseConfig, context_dir: Path) -> None:
    land(warehouse, good())
    earlier = {
        "contacts": [{"contact_id": "9", "email": "not an email", "stage": "nonsense"}],
        "email_events": [],
        "web_events": [{"message_id": "old", "event_type": "bogus", "at": NOW}],
        "loads": [{"source": "segment.web_events", "read": 10, "quarantined": 9}],
    }
    land(warehouse, earlier, run_id="an earlier run", loaded_at=NOW - timedelta(days=1))
    assert raw_gate(warehouse, run_id=RUN, context_dir=context_dir).success
    with pytest.raises(GateFailed):
        raw_gate(warehouse, run_id="an earlier run", context_dir=context_dir)


def test_warnings_are_kept_not_fatal(
    warehouse: WarehouseConfig, context_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = good()
    rows["email_events"] = []  # a portal that sends no marketing email: a warning only
    rows["contacts"][1]["stage"] = "hotprospect"
    land(warehouse, rows)
    # An operator demoted the lifecycle check to a warning.
    monkeypatch.setenv(
        "LEAD_SCORING_QUALITY_SEVERITY", '{"contacts.lifecycle_stage_known": "warning"}'
    )
    result = raw_gate(warehouse, run_id=RUN, context_dir=context_dir)
    assert result.success
    assert result.failures == []
    assert sorted(w.split(":")[1].strip() for w in result.warnings) == [
        "contacts.lifecycle_stage_known",
        "freshness.email_events_exist",
    ]
    with psycopg.connect(warehouse.conninfo()) as conn:
        kept = conn.execute("select passed, warnings from lead_scoring_ops.quality_gate_runs")
        passed, warnings = kept.fetchone() or (None, None)
    assert passed is True
    assert len(warnings) == 2


def test_bounds_come_from_the_environment(
    warehouse: WarehouseConfig, context_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = good()
    rows["loads"][1]["quarantined"] = 200  # 20%
    land(warehouse, rows)
    with pytest.raises(GateFailed, match=r"loads\.quarantine_share"):
        raw_gate(warehouse, run_id=RUN, context_dir=context_dir)
    monkeypatch.setenv("LEAD_SCORING_QUALITY_MAX_QUARANTINE_SHARE", "0.25")
    assert raw_gate(warehouse, run_id=RUN, context_dir=context_dir).success


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LEAD_SCORING_QUALITY_MAX_QUARANTINE_SHARE", "five percent", "must be a number"),
        ("LEAD_SCORING_QUALITY_SEVERITY", "{not json", "is not JSON"),
        ("LEAD_SCORING_QUALITY_SEVERITY", '{"loads.quarantine_share": "fatal"}', "one of"),
    ],
)
def test_bad_settings_are_clear_errors(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        QualitySettings.from_env()
