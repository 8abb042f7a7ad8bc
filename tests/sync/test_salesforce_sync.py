"""The second sync target: Salesforce Bulk API 2.0 upserts of Leads, against the local stand-in
over real HTTP, through the same engine (ledger, write-ahead, guard, metrics) as HubSpot."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from lead_scoring.config import WarehouseConfig
from lead_scoring.crm import HubSpotClient
from lead_scoring.crm.salesforce import SalesforceBulkClient, SalesforceError
from lead_scoring.sandbox import Sandbox
from lead_scoring.sandbox.salesforce import SalesforceSandbox
from lead_scoring.sync import hubspot, salesforce
from lead_scoring.sync.salesforce import salesforce_fields, sync_scores
from tests.helpers import seed_contacts
from tests.sync.test_hubspot_sync import AS_OF, band, setup_scores

pytestmark = pytest.mark.integration
KEY = "DW_Lead_Key__c"


@pytest.fixture
def org() -> Any:
    with SalesforceSandbox(fields=salesforce_fields("dw_lead")) as stand_in:
        yield stand_in


def seed_leads(org: SalesforceSandbox, count: int) -> None:
    org.org.seed(
        [
            {KEY: str(i), "LastName": f"Lead {i}", "Company": "Acme", "Email": f"l{i}@x.com"}
            for i in range(1, count + 1)
        ]
    )


def jobs_created(org: SalesforceSandbox) -> int:
    return sum(n for key, n in org.requests() if key == "jobs.create 200")


def client(org: SalesforceSandbox) -> SalesforceBulkClient:
    return SalesforceBulkClient(org.url, org.token, poll_interval=0.01, poll_cap=0.05)


def test_changed_leads_are_upserted_by_external_id_once(
    warehouse: WarehouseConfig, org: SalesforceSandbox
) -> None:
    seed_leads(org, 250)
    scores = {str(i): (i % 101, band(i % 101)) for i in range(1, 251)}
    setup_scores(warehouse, scores)
    with client(org) as sf:
        first = sync_scores(warehouse, sf, AS_OF, batch_size=100)
    assert (first.changed, first.sent, first.accepted, first.failed) == (250, 250, 250, 0)
    assert jobs_created(org) == 3  # ceil(250 / 100) ingest jobs
    for key, (score, expected_band) in scores.items():
        lead = org.org.by_key(key)
        assert lead is not None
        assert (lead["dw_lead_score__c"], lead["dw_lead_band__c"]) == (score, expected_band)
        assert lead["dw_lead_mql__c"] is False
        assert lead["dw_lead_mql_date__c"] is None  # '#N/A': null, not left as it was
        assert lead["dw_lead_ruleset_version__c"] == "v1"
        assert lead["LastName"] == f"Lead {key}"  # fields the sync does not own are untouched
    with psycopg.connect(warehouse.conninfo()) as conn:
        run = conn.execute(
            "select crm, changed, sent, accepted, failed, requests, status "
            "from lead_scoring_ops.crm_sync_runs where sync_run_id = %s",
            (first.sync_run_id,),
        ).fetchone()
    assert run is not None
    assert run[:5] == ("salesforce", 250, 250, 250, 0)
    assert run[5] == first.requests > 3
    assert run[6] == "succeeded"

    with client(org) as sf:
        again = sync_scores(warehouse, sf, AS_OF, batch_size=100)
    assert (again.changed, again.sent) == (0, 0)
    assert jobs_created(org) == 3  # nothing changed: no job at all


def test_each_crm_keeps_its_own_ledger(
    warehouse: WarehouseConfig, org: SalesforceSandbox, sandbox: Sandbox
) -> None:
    seed_contacts(sandbox, 40)
    seed_leads(org, 40)
    setup_scores(warehouse, {str(i): (80, "hot") for i in range(1, 41)})
    with HubSpotClient(sandbox.url, sandbox.token) as hs:
        assert hubspot.sync_scores(warehouse, hs, AS_OF).accepted == 40
    with client(org) as sf:  # what HubSpot accepted is still a change for Salesforce
        assert sync_scores(warehouse, sf, AS_OF).accepted == 40
    with HubSpotClient(sandbox.url, sandbox.token) as hs:
        assert hubspot.sync_scores(warehouse, hs, AS_OF).changed == 0


def test_converted_and_unknown_leads_are_recorded_and_not_retried(
    warehouse: WarehouseConfig, org: SalesforceSandbox
) -> None:
    seed_leads(org, 10)
    with org.org.lock:
        for lead in org.org.leads.values():
            if lead[KEY] in ("3", "4"):
                lead["IsConverted"] = True
    scores = {str(i): (50, "warm") for i in range(1, 13)}  # 11 and 12: no such Lead
    setup_scores(warehouse, scores)
    with client(org) as sf:
        result = sync_scores(warehouse, sf, AS_OF)
    assert (result.accepted, result.not_found, result.failed) == (8, 4, 0)
    assert org.org.by_key("11") is None  # not created without LastName and Company
    with psycopg.connect(warehouse.conninfo()) as conn:
        gone = conn.execute(
            "select lead_id from lead_scoring_ops.crm_sync_ledger "
            "where crm = 'salesforce' and status = 'not_found' order by lead_id"
        ).fetchall()
    assert gone == [("11",), ("12",), ("3",), ("4",)]
    with client(org) as sf:
        assert sync_scores(warehouse, sf, AS_OF).changed == 0


def test_missing_fields_stop_the_sync_before_any_job(warehouse: WarehouseConfig) -> None:
    fields = salesforce_fields("dw_lead")
    del fields["dw_lead_top_reasons__c"]
    setup_scores(warehouse, {"1": (10, "cold")})
    with SalesforceSandbox(fields=fields) as org, client(org) as sf:
        with pytest.raises(SalesforceError, match="no field dw_lead_top_reasons__c"):
            sync_scores(warehouse, sf, AS_OF)
        assert jobs_created(org) == 0


def test_a_sync_killed_after_a_job_completed_resumes_without_sending_it_again(
    warehouse: WarehouseConfig, org: SalesforceSandbox
) -> None:
    seed_leads(org, 300)
    scores = {str(i): (i % 101, band(i % 101)) for i in range(1, 301)}
    setup_scores(warehouse, scores)

    class DiesAfterTheJob(SalesforceBulkClient):
        def upsert(self, *args: Any, **kwargs: Any) -> Any:
            outcome = super().upsert(*args, **kwargs)
            raise KeyboardInterrupt(f"killed after job {outcome.job_id} completed")

    dying = DiesAfterTheJob(org.url, org.token, poll_interval=0.01)
    with dying, pytest.raises(KeyboardInterrupt):
        sync_scores(warehouse, dying, AS_OF, batch_size=100, concurrency=1)
    assert jobs_created(org) == 1
    with client(org) as sf:
        resumed = sync_scores(warehouse, sf, AS_OF, batch_size=100)
    assert resumed.reconciled == 100  # read back with SOQL: applied, not sent again
    assert (resumed.changed, resumed.accepted) == (200, 200)
    assert jobs_created(org) == 3
    held = {k: org.org.by_key(k) for k in scores}
    assert {k: (v["dw_lead_score__c"], v["dw_lead_band__c"]) for k, v in held.items() if v} == {
        k: (float(s), b) for k, (s, b) in scores.items()
    }


def test_the_client_reports_salesforce_errors_in_their_shape(org: SalesforceSandbox) -> None:
    with SalesforceBulkClient(org.url, "wrong-token") as sf, pytest.raises(SalesforceError) as e:
        sf.lead_fields()
    assert (e.value.status, e.value.code) == (401, "INVALID_SESSION_ID")
    with client(org) as sf:
        with pytest.raises(SalesforceError, match="INVALIDFIELD"):
            sf.upsert("Lead", "Email", [{"Email": "a@x.com"}])
        outcome = sf.upsert("Lead", KEY, [{KEY: "new-1", "dw_lead_score__c": "ten"}])
    assert outcome.state == "JobComplete"
    assert outcome.failed[0]["sf__Error"].startswith("INVALID_TYPE_ON_FIELD_IN_RECORD")


def test_targets_write_the_same_values() -> None:
    assert tuple(hubspot.PROPERTIES) == tuple(salesforce.FIELD_TYPES)


def test_the_dag_task_syncs_to_salesforce_when_configured(
    warehouse: WarehouseConfig, org: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from lead_scoring import tasks

    seed_leads(org, 30)
    setup_scores(warehouse, {str(i): (75, "hot") for i in range(1, 31)})
    monkeypatch.setenv("LEAD_SCORING_SYNC_TARGET", "salesforce")
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", warehouse.to_airflow_json())
    monkeypatch.setenv(
        "AIRFLOW_CONN_SALESFORCE",
        json.dumps(
            {"conn_type": "http", "host": org.url, "password": org.token,
             "extra": {"batch_size": 10}}
        ),
    )  # fmt: skip
    summary = tasks.sync_scores(run_id="manual__1", as_of=AS_OF.isoformat())
    assert (summary["crm"], summary["accepted"]) == ("salesforce", 30)
    assert jobs_created(org) == 3
    assert org.org.by_key("7")["dw_lead_band__c"] == "hot"  # type: ignore[index]


@pytest.mark.parametrize("value", ["pipedrive", "hub spot"])
def test_unknown_sync_target_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from lead_scoring.config import ConfigError, sync_target_from_env

    monkeypatch.setenv("LEAD_SCORING_SYNC_TARGET", value)
    with pytest.raises(ConfigError, match="hubspot, salesforce"):
        sync_target_from_env()


def test_salesforce_connection_needs_a_url_and_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from lead_scoring.config import ConfigError, salesforce_config

    monkeypatch.setenv(
        "AIRFLOW_CONN_SALESFORCE", '{"conn_type": "http", "host": "x.my.salesforce.com"}'
    )
    with pytest.raises(ConfigError, match="OAuth access token"):
        salesforce_config()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SALESFORCE",
        '{"conn_type": "http", "host": "acme.my.salesforce.com", "password": "s3cret"}',
    )
    config = salesforce_config()
    assert config.instance_url == "https://acme.my.salesforce.com"
    assert "s3cret" not in repr(config)
