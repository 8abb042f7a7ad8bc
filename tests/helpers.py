"""Small helpers the integration tests share (seeding the sandbox, counting its writes)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from lead_scoring.config import CrmConfig, WarehouseConfig, gx_context_dir
from lead_scoring.sandbox import Sandbox
from lead_scoring.sandbox.admin import SandboxAdmin, write_requests
from lead_scoring.synth import SynthConfig, write_dataset

REPO = Path(__file__).resolve().parents[1]


def seed_contacts(sandbox: Sandbox, count: int) -> None:
    """``count`` contacts lead0@example.com, lead1@..., with ids 1..count in a fresh portal."""
    contacts = [
        {
            "properties": {
                "email": f"lead{i}@example.com",
                "firstname": f"Lead{i}",
                "jobtitle": "VP Sales",
            },
            "createdAt": "2026-01-01T00:00:00.000Z",
        }
        for i in range(count)
    ]
    with SandboxAdmin(sandbox.url, sandbox.token) as admin:
        admin.seed_contacts(contacts)


def crm_writes(sandbox: Sandbox) -> tuple[int, int]:
    """(batch-update calls, contacts written) the sandbox has accepted so far."""
    with SandboxAdmin(sandbox.url, sandbox.token) as admin:
        return write_requests(admin.stats())


def dag_environment(
    config: SynthConfig,
    warehouse: WarehouseConfig,
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    """Write ``config``'s dataset into the sandbox and point the DAG at the warehouse, the
    sandbox, the export and a copy of the GX context (its Data Docs stay in ``tmp_path``).
    Returns the dataset's summary."""
    summary = write_dataset(
        config, crm_url=sandbox.url, token=sandbox.token, out_dir=tmp_path / "dataset"
    )
    gx_dir = tmp_path / "expectations"
    shutil.copytree(gx_context_dir(), gx_dir, ignore=shutil.ignore_patterns("uncommitted"))
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", warehouse.to_airflow_json())
    monkeypatch.setenv("AIRFLOW_CONN_CRM", CrmConfig(sandbox.url, sandbox.token).to_airflow_json())
    monkeypatch.setenv("LEAD_SCORING_EVENTS_PATH", summary.events_dir)
    monkeypatch.setenv("LEAD_SCORING_GX_DIR", str(gx_dir))
    return summary


def load_dag() -> Any:
    """The lead_scoring DAG as the DAG processor parses it now (the environment applies)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}, bag.import_errors
    return bag.dags["lead_scoring"]
