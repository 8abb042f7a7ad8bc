"""Reverse-ETL against the sandbox over real HTTP: only changes, batches of 100, per-record 207s."""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg
import pytest

from lead_scoring.config import ConfigError, WarehouseConfig
from lead_scoring.crm import HubSpotClient
from lead_scoring.sandbox import Faults, Sandbox
from lead_scoring.sandbox.admin import SandboxAdmin, write_requests
from lead_scoring.sync.hubspot import (
    PROPERTIES,
    TooManyChanges,
    max_attempts_from_env,
    max_changes_from_env,
    sync_scores,
)
from tests.helpers import crm_writes, seed_contacts

pytestmark = pytest.mark.integration
AS_OF = date(2026, 6, 1)


def setup_scores(warehouse: WarehouseConfig, scores: dict[str, tuple[int, str]]) -> None:
    with psycopg.connect(warehouse.conninfo()) as conn:
        conn.execute(
            """
            create schema if not exists lead_scoring_rules;
            create schema if not exists lead_scoring_marts;
            create table if not exists lead_scoring_rules.scoring_models (
                scoring_model_id text, crm_property_prefix text);
            create table if not exists lead_scoring_marts.fct_lead_scores (
                lead_id text, scoring_model_id text, as_of_date date,
                total_score integer, band text, fit_grade text default 'B',
                is_mql boolean default false, mql_date date, is_sql boolean default false,
                sql_date date, top_reasons text default 'Pricing page (+10)',
                ruleset_version text default 'v1', scored_at timestamptz default now());
            truncate lead_scoring_rules.scoring_models, lead_scoring_marts.fct_lead_scores;
            insert into lead_scoring_rules.scoring_models values ('default', 'dw_lead');
            """
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                "insert into lead_scoring_marts.fct_lead_scores values (%s, 'default', %s, %s, %s)",
                [(lead_id, AS_OF, score, band) for lead_id, (score, band) in scores.items()],
            )


def crm_values(sandbox: Sandbox, ids: list[str]) -> dict[str, dict[str, Any]]:
    records = sandbox.portal.get_contacts(ids, ["dw_lead_score", "dw_lead_band"])
    return {k: v["properties"] for k, v in records.items()}


def core(payload: dict[str, str]) -> tuple[str, str]:
    return payload["dw_lead_score"], payload["dw_lead_band"]


def band(score: int) -> str:
    return "hot" if score >= 70 else "warm" if score >= 40 else "cold"


def test_first_sync_writes_every_score_in_batches_of_100(
    warehouse: WarehouseConfig, sandbox: Sandbox
) -> None:
    seed_contacts(sandbox, 250)
    scores = {str(i): (i % 101, band(i % 101)) for i in range(1, 251)}
    setup_scores(warehouse, scores)
    with HubSpotClient(sandbox.url, sandbox.token) as client:
        result = sync_scores(warehouse, client, AS_OF)
    assert (result.changed, result.sent, result.accepted, result.failed) == (250, 250, 250, 0)
    assert crm_writes(sandbox) == (3, 250)  # ceil(250 / 100) calls, each contact once
    held = crm_values(sandbox, list(scores))
    assert {k: (int(v["dw_lead_score"]), v["dw_lead_band"]) for k, v in held.items()} == scores
    assert sandbox.portal.get_property("dw_lead_score")["type"] == "number"  # type: ignore[index]


def test_second_sync_with_nothing_changed_writes_nothing(
    warehouse: WarehouseConfig, sandbox: Sandbox
) -> None:
    seed_contacts(sandbox, 30)
    setup_scores(warehouse, {str(i): (50, "warm") for i in range(1, 31)})
    with HubSpotClient(sandbox.url, sandbox.token) as client:
        sync_scores(warehouse, client, AS_OF)
        before = crm_writes(sandbox)
        again = sync_scores(warehouse, client, AS_OF)
    assert (again.scores_considered, again.changed, again.sent) == (30, 0, 0)
    assert crm_writes(sandbox) == before
    assert again.requests == 0  # not even the property checks: no quota spent


def test_only_changed_leads_are_sent(warehouse: WarehouseConfig, sandbox: Sandbox) -> None:
    seed_contacts(sandbox, 40)
    scores = {str(i): (20, "cold") for i in range(1, 41)}
    setup_scores(warehouse, scores)
    with HubSpotClient(sandbox.url, sandbox.token) as client:
        sync_scores(warehouse, client, AS_OF)
        untouched_before = sandbox.portal.get_contacts(["1"], None)["1"]["updatedAt"]
        changed = {"3": (75, "hot"), "17": (45, "warm")}
        setup_scores(warehouse, {**scores, **changed})
        before = crm_writes(sandbox)
        result = sync_scores(warehouse, client, AS_OF)
    after = crm_writes(sandbox)
    assert (result.changed, result.sent) == (2, 2)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 2)
    held = crm_values(sandbox, ["3", "17", "1"])
    assert (held["3"]["dw_lead_score"], held["3"]["dw_lead_band"]) == ("75", "hot")
    assert (held["17"]["dw_lead_score"], held["17"]["dw_lead_band"]) == ("45", "warm")
    assert sandbox.portal.get_contacts(["1"], None)["1"]["updatedAt"] == untouched_before


def test_an_older_as_of_date_never_moves_the_crm_back_in_time(
    warehouse: WarehouseConfig, sandbox: Sandbox
) -> None:
    """A backfill (or a re-run of a past date) after a later date was synced rescores the past
    in the warehouse but leaves the CRM holding the latest scores."""
    seed_contacts(sandbox, 20)
    setup_scores(warehouse, {str(i): (80, "hot") for i in range(1, 21)})
    with HubSpotClient(sandbox.url, sandbox.token) as client:
        sync_scores(warehouse, client, AS_OF)
        with psycopg.connect(warehouse.conninfo()) as conn:  # the scores change since
            conn.execute(
                "update lead_scoring_marts.fct_lead_scores set total_score = 10, band = 'cold'"
            )
        before = crm_writes(sandbox)
        older = sync_scores(warehouse, client, date(2026, 5, 31))
        assert older.skipped is not None
        assert "2026-06-01" in older.skipped
        assert (older.changed, older.sent, older.requests) == (0, 0, 0)
        assert crm_writes(sandbox) == before
        assert {v["dw_lead_band"] for v in crm_values(sandbox, ["1", "2"]).values()} == {"hot"}
        dry = sync_scores(warehouse, client, date(2026, 5, 31), dry_run=True)
        assert dry.skipped is None  # a dry run may still show what the scores would change
        assert dry.changed == 20
    with psycopg.connect(warehouse.conninfo()) as conn:
        statuses = conn.execute(
            "select status from lead_scoring_ops.crm_sync_runs order by started_at"
        ).fetchall()
    assert statuses == [("succeeded",), ("skipped",), ("succeeded",)]


def test_a_backfill_never_sends_the_newer_current_scores_as_its_own(
    warehouse: WarehouseConfig, sandbox: Sandbox
) -> None:
    """The current scores are those of the newest date built; a backfill of an older date
    leaves them as they are, so its sync has nothing of its own date to send."""
    seed_contacts(sandbox, 5)
    setup_scores(warehouse, {str(i): (80, "hot") for i in range(1, 6)})
    with psycopg.connect(warehouse.conninfo()) as conn:
        conn.execute(
            "create table lead_scoring_marts.fct_lead_score_summary as "
            "select %s::date as as_of_date",
            (AS_OF,),
        )
    with HubSpotClient(sandbox.url, sandbox.token) as client:
        older = sync_scores(warehouse, client, date(2026, 5, 31))
        assert older.skipped is not None
        assert "current scores are as of 2026-06-01" in older.skipped
        assert (older.changed, older.sent, older.requests) == (0, 0, 0)
        assert crm_writes(sandbox) == (0, 0)
        newest = sync_scores(warehouse, client, AS_OF)
    assert (newest.skipped, newest.sent) == (None, 5)


def test_contact_missing_in_crm_is_recorded_and_not_retried(
    warehouse: WarehouseConfig, sandbox: Sandbox
) -> None:
    seed_contacts(sandbox, 3)
    setup_scores(warehouse, {"1": (10, "cold"), "2": (90, "hot"), "404": (55, "warm")})
    with HubSpotClient(sandbox.url, sandbox.token) as client:
        first = sync_scores(warehouse, client, AS_OF)
        before = crm_writes(sandbox)
        second = sync_scores(warehouse, client, AS_OF)
    assert (first.sent, first.accepted, first.not_found) == (3, 2, 1)
    assert (second.changed, second.sent) == (0, 0)
    assert crm_writes(sandbox) == before
    with psycopg.connect(warehouse.conninfo()) as conn:
        ledger = conn.execute(
            "select lead_id, status from lead_scoring_ops.crm_sync_ledger order by lead_id"
        ).fetchall()
        runs = conn.execute(
            "select status, changed, sent, accepted, not_found, requests "
            "from lead_scoring_ops.crm_sync_runs order by started_at"
        ).fetchall()
    assert ledger == [("1", "accepted"), ("2", "accepted"), ("404", "not_found")]
    assert runs[0][:5] == ("succeeded", 3, 3, 2, 1)
    assert runs[1][:3] == ("succeeded", 0, 0)


def test_dry_run_writes_nothing_and_keeps_what_it_would_send(
    warehouse: WarehouseConfig, sandbox: Sandbox
) -> None:
    seed_contacts(sandbox, 5)
    setup_scores(warehouse, {str(i): (80, "hot") for i in range(1, 6)})
    with HubSpotClient(sandbox.url, sandbox.token) as client:
        result = sync_scores(warehouse, client, AS_OF, dry_run=True)
        assert crm_writes(sandbox) == (0, 0)
        real = sync_scores(warehouse, client, AS_OF)
        setup_scores(warehouse, {**{str(i): (80, "hot") for i in range(1, 6)}, "2": (30, "cold")})
        second = sync_scores(warehouse, client, AS_OF, dry_run=True)
    assert (result.changed, result.sent, result.accepted) == (5, 5, 0)
    assert real.accepted == 5  # the dry run left the ledger alone
    assert crm_writes(sandbox) == (1, 5)
    with psycopg.connect(warehouse.conninfo()) as conn:
        kept = conn.execute(
            "select sync_run_id::text, lead_id, payload, previous_payload "
            "from lead_scoring_ops.crm_sync_dry_run_changes order by sync_run_id, lead_id"
        ).fetchall()
    first_rows = [(r[1], core(r[2]), r[3]) for r in kept if r[0] == result.sync_run_id]
    assert first_rows == [(str(i), ("80", "hot"), None) for i in range(1, 6)]
    assert [(r[1], core(r[2]), core(r[3])) for r in kept if r[0] == second.sync_run_id] == [
        ("2", ("30", "cold"), ("80", "hot"))
    ]


def test_more_changes_than_the_limit_send_nothing_unless_approved(
    warehouse: WarehouseConfig, sandbox: Sandbox
) -> None:
    seed_contacts(sandbox, 12)
    setup_scores(warehouse, {str(i): (75, "hot") for i in range(1, 13)})
    with HubSpotClient(sandbox.url, sandbox.token) as client:
        with pytest.raises(TooManyChanges, match="12 scores changed, more than the 10"):
            sync_scores(warehouse, client, AS_OF, max_changes=10)
        assert crm_writes(sandbox) == (0, 0)
        assert sandbox.portal.get_contacts(["1"], ["dw_lead_score"])["1"]["properties"] == {
            "dw_lead_score": None
        }
        # A dry run shows them without tripping the guard.
        assert sync_scores(warehouse, client, AS_OF, max_changes=10, dry_run=True).changed == 12
        approved = sync_scores(warehouse, client, AS_OF, max_changes=10, approve_changes=True)
        assert approved.accepted == 12
        # Under the limit (or with 0 = no limit) nothing needs approval.
        setup_scores(warehouse, {str(i): (20, "cold") for i in range(1, 13)})
        assert sync_scores(warehouse, client, AS_OF, max_changes=0).accepted == 12
    with psycopg.connect(warehouse.conninfo()) as conn:
        runs = conn.execute(
            "select status, changed, sent, error from lead_scoring_ops.crm_sync_runs "
            "order by started_at"
        ).fetchall()
    assert runs[0][:3] == ("failed", 12, 0)
    assert "TooManyChanges" in runs[0][3]
    assert [r[:3] for r in runs[1:]] == [
        ("succeeded", 12, 12),
        ("succeeded", 12, 12),
        ("succeeded", 12, 12),
    ]


def test_a_first_sync_of_a_portal_beyond_a_small_size_needs_approval(
    warehouse: WarehouseConfig, sandbox: Sandbox
) -> None:
    """Issue 20, defect 5: with nothing ever sent, nothing can show a wild ruleset, so only
    its size guards the first sync."""
    seed_contacts(sandbox, 12)
    setup_scores(warehouse, {str(i): (75, "hot") for i in range(1, 13)})
    with HubSpotClient(sandbox.url, sandbox.token) as client:
        with pytest.raises(TooManyChanges, match=r"first sync to hubspot .* 12 contacts"):
            sync_scores(warehouse, client, AS_OF, max_first_sync_leads=10)
        assert crm_writes(sandbox) == (0, 0)
        first = sync_scores(warehouse, client, AS_OF, max_first_sync_leads=10, approve_changes=True)
        assert first.accepted == 12
        # once the CRM holds scores, the drift guard and the change limit take over
        setup_scores(warehouse, {str(i): (20, "cold") for i in range(1, 13)})
        assert sync_scores(warehouse, client, AS_OF, max_first_sync_leads=10).accepted == 12


@pytest.mark.parametrize(("value", "expected"), [(None, 50_000), ("0", 0), ("250", 250)])
def test_change_limit_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: int
) -> None:
    if value is None:
        monkeypatch.delenv("LEAD_SCORING_SYNC_MAX_CHANGES", raising=False)
    else:
        monkeypatch.setenv("LEAD_SCORING_SYNC_MAX_CHANGES", value)
    assert max_changes_from_env() == expected


@pytest.mark.parametrize("value", ["lots", "-1", "1.5"])
def test_bad_change_limit_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("LEAD_SCORING_SYNC_MAX_CHANGES", value)
    with pytest.raises(ConfigError, match="LEAD_SCORING_SYNC_MAX_CHANGES"):
        max_changes_from_env()


def ledger_row(warehouse: WarehouseConfig, lead_id: str) -> tuple[Any, ...] | None:
    with psycopg.connect(warehouse.conninfo()) as conn:
        return conn.execute(
            "select status, attempts, last_error, payload from lead_scoring_ops.crm_sync_ledger "
            "where lead_id = %s",
            (lead_id,),
        ).fetchone()


def test_a_record_the_crm_refuses_is_isolated_retried_then_given_up(
    warehouse: WarehouseConfig, sandbox: Sandbox
) -> None:
    seed_contacts(sandbox, 10)
    scores = {str(i): (50, "warm") for i in range(1, 11)}
    scores["4"] = (50, "lukewarm")  # not an option of the band property: HubSpot answers 400
    setup_scores(warehouse, scores)
    with HubSpotClient(sandbox.url, sandbox.token) as client:
        first = sync_scores(warehouse, client, AS_OF, max_attempts=3)
        # The batch was split until lead 4 stood alone: the other nine are in the CRM.
        assert (first.changed, first.accepted, first.failed, first.gave_up) == (10, 9, 1, 0)
        assert first.split_batches == 4
        assert "not a valid option" in first.failures["4"]
        held = crm_values(sandbox, [str(i) for i in range(1, 11)])
        assert {k for k, v in held.items() if v["dw_lead_band"] == "warm"} == set(scores) - {"4"}
        assert held["4"]["dw_lead_band"] is None
        status, attempts, error, payload = ledger_row(warehouse, "4") or (None,) * 4
        assert (status, attempts, payload) == ("failing", 1, None)
        assert "not a valid option" in error

        second = sync_scores(warehouse, client, AS_OF, max_attempts=3)
        assert (second.changed, second.sent, second.failed) == (1, 1, 1)
        assert ledger_row(warehouse, "4")[:2] == ("failing", 2)  # type: ignore[index]
        third = sync_scores(warehouse, client, AS_OF, max_attempts=3)
        assert third.gave_up == 1
        assert ledger_row(warehouse, "4")[:2] == ("gave_up", 3)  # type: ignore[index]

        # Given up: not sent again while its payload stays the same.
        before = crm_writes(sandbox)
        fourth = sync_scores(warehouse, client, AS_OF, max_attempts=3)
        assert (fourth.changed, fourth.sent) == (0, 0)
        assert crm_writes(sandbox) == before

        # A new payload is tried again, and once accepted the failure is forgotten.
        setup_scores(warehouse, {**scores, "4": (50, "warm")})
        fifth = sync_scores(warehouse, client, AS_OF, max_attempts=3)
        assert (fifth.changed, fifth.accepted) == (1, 1)
    row = ledger_row(warehouse, "4")
    assert row is not None
    assert (row[0], row[1], row[2], core(row[3])) == ("accepted", 0, None, ("50", "warm"))


def test_an_older_ledger_gains_the_failure_columns(
    warehouse: WarehouseConfig, sandbox: Sandbox
) -> None:
    with psycopg.connect(warehouse.conninfo()) as conn:
        conn.execute(
            """
            create schema lead_scoring_ops;
            create table lead_scoring_ops.crm_sync_ledger (
                lead_id text not null, scoring_model_id text not null,
                payload jsonb not null, payload_hash text not null,
                status text not null check (status in ('accepted', 'not_found')),
                synced_at timestamptz not null, sync_run_id uuid not null,
                primary key (lead_id, scoring_model_id));
            insert into lead_scoring_ops.crm_sync_ledger values
                ('1', 'default', '{}', 'old', 'accepted', now(), gen_random_uuid());
            """
        )
    seed_contacts(sandbox, 2)
    setup_scores(warehouse, {"1": (50, "warm"), "2": (50, "nope")})
    with HubSpotClient(sandbox.url, sandbox.token) as client:
        result = sync_scores(warehouse, client, AS_OF)
    assert (result.accepted, result.failed) == (1, 1)
    assert ledger_row(warehouse, "2")[:2] == ("failing", 1)  # type: ignore[index]


def test_a_ledger_hashed_before_the_diff_moved_into_sql_sends_nothing_again(
    warehouse: WarehouseConfig, sandbox: Sandbox
) -> None:
    """The change hashes are computed in SQL now; a ledger from before holds sha256 hashes made
    in Python. The first sync after the upgrade rehashes what the CRM holds and sends nothing."""
    seed_contacts(sandbox, 3)
    setup_scores(warehouse, {"1": (50, "warm"), "2": (90, "hot"), "3": (5, "cold")})
    with HubSpotClient(sandbox.url, sandbox.token) as client:
        assert sync_scores(warehouse, client, AS_OF).accepted == 3
        with psycopg.connect(warehouse.conninfo()) as conn:
            conn.execute(
                "update lead_scoring_ops.crm_sync_ledger "
                "set payload_hash = encode(sha256(convert_to(payload::text, 'UTF8')), 'hex')"
            )
            conn.execute("comment on table lead_scoring_ops.crm_sync_ledger is null")
        before = crm_writes(sandbox)
        again = sync_scores(warehouse, client, AS_OF)
    assert (again.scores_considered, again.changed, again.requests) == (3, 0, 0)
    assert crm_writes(sandbox) == before
    with psycopg.connect(warehouse.conninfo()) as conn:
        lengths = conn.execute(
            "select distinct length(payload_hash) from lead_scoring_ops.crm_sync_ledger"
        ).fetchall()
    assert lengths == [(32,)]


@pytest.mark.parametrize(("value", "expected"), [(None, 5), ("1", 1), ("12", 12)])
def test_attempt_limit_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: int
) -> None:
    if value is None:
        monkeypatch.delenv("LEAD_SCORING_SYNC_MAX_ATTEMPTS", raising=False)
    else:
        monkeypatch.setenv("LEAD_SCORING_SYNC_MAX_ATTEMPTS", value)
    assert max_attempts_from_env() == expected


def test_every_property_of_a_score_reaches_the_crm_and_scoring_time_alone_is_no_change(
    warehouse: WarehouseConfig, sandbox: Sandbox
) -> None:
    seed_contacts(sandbox, 2)
    setup_scores(warehouse, {"1": (85, "hot"), "2": (10, "cold")})
    with psycopg.connect(warehouse.conninfo()) as conn:
        conn.execute(
            "update lead_scoring_marts.fct_lead_scores set fit_grade = 'A', is_mql = true, "
            "mql_date = '2026-05-20', is_sql = true, sql_date = '2026-05-28', "
            "top_reasons = 'Demo request (+35); Pricing page (+20)', ruleset_version = 'abc123', "
            "scored_at = '2026-06-01 02:03:04.5+00' where lead_id = '1'"
        )
    with HubSpotClient(sandbox.url, sandbox.token) as client:
        sync_scores(warehouse, client, AS_OF)
        names = [f"dw_lead_{suffix}" for suffix in PROPERTIES]
        held = sandbox.portal.get_contacts(["1", "2"], names)
        assert held["1"]["properties"] == {
            "dw_lead_score": "85",
            "dw_lead_band": "hot",
            "dw_lead_fit_grade": "A",
            "dw_lead_mql": "true",
            "dw_lead_mql_date": "2026-05-20",
            "dw_lead_sql": "true",
            "dw_lead_sql_date": "2026-05-28",
            "dw_lead_top_reasons": "Demo request (+35); Pricing page (+20)",
            "dw_lead_ruleset_version": "abc123",
            "dw_lead_scored_at": "2026-06-01T02:03:04.500Z",
        }
        assert held["2"]["properties"]["dw_lead_mql"] == "false"
        assert held["2"]["properties"]["dw_lead_mql_date"] is None
        for name in names:
            assert sandbox.portal.get_property(name) is not None, name
        # Re-scored later with the same values: nothing to write.
        with psycopg.connect(warehouse.conninfo()) as conn:
            conn.execute("update lead_scoring_marts.fct_lead_scores set scored_at = now()")
        before = crm_writes(sandbox)
        again = sync_scores(warehouse, client, AS_OF)
    assert (again.changed, again.sent) == (0, 0)
    assert crm_writes(sandbox) == before


def test_faults_are_retried_and_every_lead_is_written_exactly_once(
    warehouse: WarehouseConfig,
) -> None:
    faults = Faults(rate_429=0.2, rate_5xx=0.05, drop_rate=0.03, seed=20261122)
    with Sandbox(port=0, token="faulty-portal", faults=faults) as sandbox:
        seed_contacts(sandbox, 450)
        scores = {str(i): (i % 101, band(i % 101)) for i in range(1, 451)}
        setup_scores(warehouse, scores)
        with HubSpotClient(
            sandbox.url, sandbox.token, backoff_base=0.01, backoff_cap=0.2, max_attempts=10
        ) as client:
            result = sync_scores(warehouse, client, AS_OF)
        with SandboxAdmin(sandbox.url, sandbox.token) as admin:
            log = admin.stats()["requests"]
        held = crm_values(sandbox, list(scores))
        injected = dict(faults.injected)
    assert sum(injected.values()) > 0, "the seed must inject faults"
    assert result.accepted == 450
    assert {k: (int(v["dw_lead_score"]), v["dw_lead_band"]) for k, v in held.items()} == scores
    # Each batch was applied once: ceil(450 / 100) calls, each lead written once.
    assert write_requests({"requests": log}) == (5, 450)
    writes = [row for row in log if row["route"] == "contacts.batch_update"]
    faulted = sum(int(r["calls"]) for r in writes if r["status"] in (0, 429) or r["status"] >= 500)
    assert sum(int(row["calls"]) for row in writes) == 5 + faulted  # calls = ceil(n/100) + retries
    # Every faulted call (writes and property set-up alike) was retried, and only those.
    assert result.retries == sum(injected.values())
    api = [row for row in log if not row["route"].startswith("sandbox.")]
    assert result.requests == sum(int(row["calls"]) for row in api)
    assert result.rate_limited == injected["429"]


class DiesAfterTheCrmAnswers(HubSpotClient):
    """A client whose process dies (KeyboardInterrupt stands for the kill) right after the
    CRM applied its ``nth`` batch update, before the sync could record the answer."""

    def __init__(self, *args: Any, nth: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.nth = nth
        self.updates = 0

    def batch_update_contacts(self, inputs: Any) -> Any:
        answer = super().batch_update_contacts(inputs)
        self.updates += 1
        if self.updates == self.nth:
            raise KeyboardInterrupt("killed with the answer on the wire")
        return answer


def test_a_sync_that_dies_mid_batch_resumes_without_sending_anything_twice(
    warehouse: WarehouseConfig, sandbox: Sandbox
) -> None:
    seed_contacts(sandbox, 250)
    scores = {str(i): (i % 101, band(i % 101)) for i in range(1, 251)}
    setup_scores(warehouse, scores)
    with (
        DiesAfterTheCrmAnswers(sandbox.url, sandbox.token, nth=2) as dying,
        pytest.raises(KeyboardInterrupt),
    ):
        # One batch at a time, so the kill lands at a known point (the SIGKILL test below
        # kills a concurrent sync).
        sync_scores(warehouse, dying, AS_OF, concurrency=1)
    assert crm_writes(sandbox) == (2, 200)  # the CRM applied two batches
    with psycopg.connect(warehouse.conninfo()) as conn:
        ledger = conn.execute("select count(*) from lead_scoring_ops.crm_sync_ledger").fetchone()
        flying = conn.execute("select count(*) from lead_scoring_ops.crm_sync_in_flight").fetchone()
    assert ledger == (100,)  # only the first batch's answer was recorded
    assert flying == (100,)  # the second batch was in flight

    with HubSpotClient(sandbox.url, sandbox.token) as client:
        resumed = sync_scores(warehouse, client, AS_OF)
    assert resumed.reconciled == 100  # read back from the CRM: already applied
    assert (resumed.changed, resumed.sent, resumed.accepted) == (50, 50, 50)
    assert crm_writes(sandbox) == (3, 250)  # every lead written exactly once
    held = crm_values(sandbox, list(scores))
    assert {k: (int(v["dw_lead_score"]), v["dw_lead_band"]) for k, v in held.items()} == scores
    with psycopg.connect(warehouse.conninfo()) as conn:
        settled = conn.execute(
            "select (select count(*) from lead_scoring_ops.crm_sync_ledger"
            "        where status = 'accepted'),"
            " (select count(*) from lead_scoring_ops.crm_sync_in_flight)"
        ).fetchone()
    assert settled == (250, 0)


def test_changes_in_flight_the_crm_never_got_are_sent_once(
    warehouse: WarehouseConfig, sandbox: Sandbox
) -> None:
    seed_contacts(sandbox, 150)
    scores = {str(i): (60, "warm") for i in range(1, 151)}
    setup_scores(warehouse, scores)

    class DiesBeforeSending(HubSpotClient):
        def batch_update_contacts(self, inputs: Any) -> Any:
            raise KeyboardInterrupt("killed before the request left")

    with DiesBeforeSending(sandbox.url, sandbox.token) as dying, pytest.raises(KeyboardInterrupt):
        sync_scores(warehouse, dying, AS_OF)
    assert crm_writes(sandbox) == (0, 0)
    with HubSpotClient(sandbox.url, sandbox.token) as client:
        resumed = sync_scores(warehouse, client, AS_OF)
    assert resumed.reconciled == 0
    assert (resumed.changed, resumed.accepted) == (150, 150)
    assert crm_writes(sandbox) == (2, 150)


KILLABLE_SYNC = """
import sys
from datetime import date
from lead_scoring.config import WarehouseConfig
from lead_scoring.crm import HubSpotClient
from lead_scoring.sync.hubspot import sync_scores

host, dbname, user, password, url, token = sys.argv[1:7]
warehouse = WarehouseConfig(host=host, dbname=dbname, user=user, password=password or None)
with HubSpotClient(url, token) as client:
    sync_scores(warehouse, client, date(2026, 6, 1))
"""


def test_killing_the_sync_process_and_running_it_again_sends_each_change_once(
    warehouse: WarehouseConfig,
) -> None:
    import os
    import random
    import subprocess
    import sys
    import time

    latency = 0.15
    # The kill lands after a random number of the 20 batches (LEAD_SCORING_KILL_SEED repeats
    # a run); the number is in every assertion message.
    seed = int(os.environ.get("LEAD_SCORING_KILL_SEED", random.SystemRandom().randrange(10**6)))
    kill_after = random.Random(seed).randint(2, 12)
    where = f"killed after {kill_after} batches (LEAD_SCORING_KILL_SEED={seed})"
    with Sandbox(port=0, token="slow-portal", faults=Faults(latency_ms=int(latency * 1000))) as sb:
        seed_contacts(sb, 2000)
        scores = {str(i): (i % 101, band(i % 101)) for i in range(1, 2001)}
        setup_scores(warehouse, scores)
        process = subprocess.Popen(
            [sys.executable, "-c", KILLABLE_SYNC, warehouse.host, warehouse.dbname,
             warehouse.user, warehouse.password or "", sb.url, sb.token],
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while crm_writes(sb)[0] < kill_after and time.monotonic() < deadline:
            time.sleep(0.01)
        process.kill()  # SIGKILL: no cleanup, no finally
        process.wait()
        written_before = crm_writes(sb)
        assert kill_after <= written_before[0] < 20, f"the kill must land mid-run: {where}"
        time.sleep(latency * 4)  # a request the server was still answering has landed by now
        with HubSpotClient(sb.url, sb.token) as client:
            resumed = sync_scores(warehouse, client, AS_OF)
        held = crm_values(sb, list(scores))
        total = crm_writes(sb)
    assert resumed.changed < 2000, where  # what was accepted before the kill is not sent again
    assert total[1] == 2000, where  # every lead written exactly once, across both runs
    # The killed run is closed by the next one, with what it had done.
    with psycopg.connect(warehouse.conninfo()) as conn:
        runs = conn.execute(
            "select status, accepted, sent, error from lead_scoring_ops.crm_sync_runs "
            "order by started_at"
        ).fetchall()
    assert [r[0] for r in runs] == ["abandoned", "succeeded"], where
    killed = runs[0]
    assert killed[2] > 0, (where, killed)  # the batches it sent
    assert 0 <= killed[1] <= killed[2], (where, killed)  # and those it had answers for
    assert "abandoned" in killed[3]
    assert resumed.sync_run_id in killed[3]
    assert {k: (int(v["dw_lead_score"]), v["dw_lead_band"]) for k, v in held.items()} == scores


class CountsBatchesInFlight(HubSpotClient):
    """Records how many batch updates were on the wire at once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        import threading

        super().__init__(*args, **kwargs)
        self._guard = threading.Lock()
        self.now = 0
        self.most = 0

    def batch_update_contacts(self, inputs: Any) -> Any:
        with self._guard:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            return super().batch_update_contacts(inputs)
        finally:
            with self._guard:
                self.now -= 1


def test_batches_go_out_concurrently_inside_the_rate_limit(warehouse: WarehouseConfig) -> None:
    # 20 calls per 2 s with 100 ms answers: one batch at a time would use half the window;
    # several in flight fill it, and the client's pacing keeps every call inside it.
    faults = Faults(latency_ms=100)
    with Sandbox(
        port=0, token="tiered", rate_limit=20, rate_interval_ms=2000, faults=faults
    ) as sandbox:
        seed_contacts(sandbox, 3000)
        scores = {str(i): (i % 101, band(i % 101)) for i in range(1, 3001)}
        setup_scores(warehouse, scores)
        with CountsBatchesInFlight(
            sandbox.url, sandbox.token, rate_limit=20, rate_interval=2.0, max_attempts=1
        ) as client:
            result = sync_scores(warehouse, client, AS_OF, concurrency=6, approve_changes=True)
        held = crm_values(sandbox, list(scores))
        writes = crm_writes(sandbox)
    assert result.accepted == 3000
    assert {k: (int(v["dw_lead_score"]), v["dw_lead_band"]) for k, v in held.items()} == scores
    assert writes == (30, 3000)
    assert 1 < client.most <= 6
    assert result.rate_limited == 0
    assert result.retries == 0
    assert client.limiter.waited_seconds > 0  # the limiter, not latency, held calls back
