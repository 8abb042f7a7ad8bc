"""The compose stack is well formed, production-shaped, and holds no secret."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "docker-compose.yml").read_text()))


def test_stack_has_the_designed_services(compose: dict[str, Any]) -> None:
    services = set(compose["services"])
    assert {"airflow-db", "warehouse", "redis", "crm-sandbox"} <= services
    assert {
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-worker",
    } <= services
    worker_env = compose["services"]["airflow-worker"]["environment"]
    assert worker_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "AIRFLOW_CONN_WAREHOUSE" in worker_env
    assert "AIRFLOW_CONN_CRM" in worker_env


def test_no_secret_is_written_in_the_compose_file() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    secret_keys = re.compile(
        r"^\s*(\w*(?:PASSWORD|SECRET|FERNET_KEY|TOKEN)\w*|AIRFLOW_CONN_\w+)\s*:\s*(.+)$",
        re.MULTILINE,
    )
    found = secret_keys.findall(text)
    assert len(found) >= 6
    for key, value in found:
        assert value.strip().startswith("${"), f"{key} is set to a literal in docker-compose.yml"
    for password in re.findall(r"://[^:/\s]+:([^@\s]+)@", text):
        assert password.startswith("${"), "a connection URL carries a literal password"


def test_env_example_names_every_variable_compose_requires() -> None:
    required = set(re.findall(r"\$\{(\w+):\?", (REPO / "docker-compose.yml").read_text()))
    example = {
        line.split("=", 1)[0]
        for line in (REPO / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert required <= example, required - example


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="Debian's docker-compose is not installed"
)
def test_docker_compose_validates_the_file() -> None:
    done = subprocess.run(
        ["docker-compose", "--env-file", ".env.example", "config", "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
