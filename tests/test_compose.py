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


AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in (*AIRFLOW_SERVICES, "airflow-db", "warehouse", "redis"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    # the scheduler's health endpoint is switched on for its healthcheck
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"]
    assert "8974/health" in " ".join(services["airflow-scheduler"]["healthcheck"]["test"])


def test_what_the_stack_names_exists_in_the_repository(compose: dict[str, Any]) -> None:
    """Build context, bind mounts, named volumes, the package's commands and the settings the
    stack passes: a typo in any of them would only show on a real `docker compose up`."""
    from lead_scoring.cli import COMMANDS

    declared = set(compose.get("volumes") or {})
    package = (
        "\n".join(path.read_text() for path in (REPO / "plugins").rglob("*.py"))
        + (REPO / "dags" / "lead_scoring.py").read_text()
    )
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = REPO / (build if isinstance(build, str) else build["context"])
            assert (context / "Dockerfile").is_file(), name
        for volume in service.get("volumes", []):
            # a ${VAR:-default} source, with the default that applies when VAR is unset
            source = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", volume).split(":", 1)[0]
            if source.startswith(("./", "/")):
                default = source
                # bind mounts are repository folders, or state `make demo` writes in .local
                assert default.startswith("./.local/") or (REPO / default).exists(), (name, volume)
            else:
                assert source in declared, f"{name} mounts the undeclared volume {source}"
        command = service.get("command") or []
        text = command if isinstance(command, str) else " ".join(command)
        entry = service.get("entrypoint")
        if entry == ["lead-scoring"]:
            assert command[0] in COMMANDS, (name, command)
        for sub in re.findall(r"lead-scoring ([a-z-]+)", text):
            assert sub in COMMANDS, (name, sub)
        for key in service.get("environment") or {}:
            if key.startswith("LEAD_SCORING_") or key == "BI_READER_PASSWORD":
                # the quality bounds are read as LEAD_SCORING_QUALITY_ + a settings field name
                field = key.removeprefix("LEAD_SCORING_QUALITY_").lower()
                read = key in package or (field != key.lower() and f'"{field}"' in package)
                assert read, f"{name} passes {key}, which nothing reads"
    dockerfile = (REPO / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", dockerfile, re.MULTILINE):
        for path in source.split():
            assert (REPO / path).exists(), f"the Dockerfile copies {path}, which is not here"


def test_bi_tools_get_a_read_only_role(compose: dict[str, Any]) -> None:
    init = compose["services"]["airflow-init"]
    assert "lead-scoring grant-bi-reader" in " ".join(init["command"])
    assert init["environment"]["BI_READER_PASSWORD"].startswith("${")
    assert init["environment"]["AIRFLOW_CONN_WAREHOUSE"].startswith("${")


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


def test_env_example_names_every_variable_compose_reads() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    optional = set(re.findall(r"\$\{(\w+):-", text))
    lines = (REPO / ".env.example").read_text().splitlines()
    set_there = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    mentioned = {m for line in lines for m in re.findall(r"^# ?([A-Z_][A-Z0-9_]+)=", line)}
    assert required <= set_there, required - set_there
    assert optional <= set_there | mentioned, optional - set_there - mentioned


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


def init_environment(values: dict[str, str], compose: dict[str, Any]) -> dict[str, str]:
    """airflow-init's environment as compose would give it, from the .env ``values``."""
    service = compose["services"]["airflow-init"]
    env = {**compose["x-airflow-common"]["environment"], **service.get("environment", {})}

    def fill(match: re.Match[str]) -> str:
        return values.get(match.group(1), "")

    return {key: re.sub(r"\$\{(\w+)[^}]*\}", fill, str(value)) for key, value in env.items()}


def test_the_stack_refuses_to_start_with_the_example_secrets(compose: dict[str, Any]) -> None:
    """Defect 9 of issue 20: `cp .env.example .env && docker compose up` must not run with
    change-me as every password, the JWT secret and an invalid Fernet key."""
    import secrets

    from cryptography.fernet import Fernet

    from lead_scoring.runtime.secrets_check import secret_problems

    assert compose["services"]["airflow-init"]["command"][1].startswith(
        "lead-scoring check-secrets && "
    )
    lines = (REPO / ".env.example").read_text().splitlines()
    example = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    problems = secret_problems(init_environment(example, compose))
    named = {problem.split(" ", 1)[0] for problem in problems}
    assert named == {
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW_CONN_WAREHOUSE",
        "AIRFLOW_CONN_CRM",
        "BI_READER_PASSWORD",
    }
    assert not any("change-me" in problem for problem in problems)  # names, never values

    generated = {
        **example,
        "AIRFLOW_FERNET_KEY": Fernet.generate_key().decode(),
        **{
            name: secrets.token_urlsafe(32)
            for name in (
                "AIRFLOW_JWT_SECRET",
                "AIRFLOW_DB_PASSWORD",
                "WAREHOUSE_PASSWORD",
                "CRM_SANDBOX_TOKEN",
                "BI_READER_PASSWORD",
            )
        },
    }
    generated["AIRFLOW_CONN_WAREHOUSE"] = example["AIRFLOW_CONN_WAREHOUSE"].replace(
        "change-me", generated["WAREHOUSE_PASSWORD"]
    )
    generated["AIRFLOW_CONN_CRM"] = example["AIRFLOW_CONN_CRM"].replace(
        "change-me", generated["CRM_SANDBOX_TOKEN"]
    )
    assert secret_problems(init_environment(generated, compose)) == []
