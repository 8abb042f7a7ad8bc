"""Refuse to start a production-shaped stack with a placeholder or weak secret.

``cp .env.example .env && docker compose up`` would otherwise run with ``change-me`` as every
password and as the API's JWT secret (anyone could forge API tokens) and an invalid Fernet key.
The compose stack's ``airflow-init`` runs ``lead-scoring check-secrets`` before anything else,
so no service starts until each secret is set. Only the variables' names are ever printed,
never a value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

PLACEHOLDERS = frozenset(
    {"", "change-me", "changeme", "admin", "airflow", "password", "secret", "postgres", "test"}
)
MIN_PASSWORD_CHARS = 16
MIN_JWT_SECRET_CHARS = 32
GENERATE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
GENERATE_FERNET = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)


def _url_password(value: str) -> str:
    return urlsplit(value).password or ""


def _conn_password(value: str) -> str:
    """The password of an Airflow connection in URI or JSON form."""
    value = value.strip()
    if value.startswith("{"):
        try:
            return str(json.loads(value).get("password") or "")
        except (ValueError, AttributeError):
            return ""
    return _url_password(value)


def _fernet_problem(value: str) -> str | None:
    from cryptography.fernet import Fernet

    try:
        Fernet(value.encode())
    except (ValueError, TypeError):
        return f"is not a valid Fernet key; generate one with {GENERATE_FERNET}"
    return None


def _weak(minimum: int) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if value.strip().lower() in PLACEHOLDERS:
            return f"is a placeholder; generate one with {GENERATE}"
        if len(value) < minimum:
            return f"is shorter than {minimum} characters; generate one with {GENERATE}"
        return None

    return check


# (variable, how to read the secret out of it, how to judge it). Variables that are not set
# are not checked: a deployment may keep a secret elsewhere (a secrets backend).
CHECKS: tuple[tuple[str, Callable[[str], str], Callable[[str], str | None]], ...] = (
    ("AIRFLOW__CORE__FERNET_KEY", str, _fernet_problem),
    ("AIRFLOW__API_AUTH__JWT_SECRET", str, _weak(MIN_JWT_SECRET_CHARS)),
    ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", _url_password, _weak(MIN_PASSWORD_CHARS)),
    ("AIRFLOW_CONN_WAREHOUSE", _conn_password, _weak(MIN_PASSWORD_CHARS)),
    ("AIRFLOW_CONN_CRM", _conn_password, _weak(MIN_PASSWORD_CHARS)),
    ("BI_READER_PASSWORD", str, _weak(MIN_PASSWORD_CHARS)),
)


def secret_problems(env: Mapping[str, str] | None = None) -> list[str]:
    """One line per secret that must not be used, naming the variable (never its value)."""
    env = os.environ if env is None else env
    problems = []
    for name, read, judge in CHECKS:
        if name not in env:
            continue
        problem = judge(read(env[name]))
        if problem:
            where = "" if read is str else " (its password)"
            problems.append(f"{name}{where} {problem}")
    return problems
