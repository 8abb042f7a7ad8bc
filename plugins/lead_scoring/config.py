"""Where the job's settings come from: Airflow connections and environment variables, never files.

Two connections drive everything (DESIGN.md, run mode 3):

- ``warehouse`` (conn type ``postgres``): the PostgreSQL warehouse. ``host`` may be a directory,
  which libpq reads as a Unix socket folder (that is how the embedded server is reached).
- ``crm`` (conn type ``http``): ``host`` is the API base URL (``https://api.hubapi.com`` or the
  sandbox), ``password`` the private-app token.

Outside Airflow (CLI, tests) the same values come from ``AIRFLOW_CONN_WAREHOUSE`` /
``AIRFLOW_CONN_CRM`` in Airflow's JSON form, so a person sets them once for both worlds.
The secret fields are excluded from ``repr`` so they cannot leak into a log line by accident.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

WAREHOUSE_CONN_ID = os.environ.get("LEAD_SCORING_WAREHOUSE_CONN_ID", "warehouse")
CRM_CONN_ID = os.environ.get("LEAD_SCORING_CRM_CONN_ID", "crm")
SALESFORCE_CONN_ID = os.environ.get("LEAD_SCORING_SALESFORCE_CONN_ID", "salesforce")
SYNC_TARGETS = ("hubspot", "salesforce")
HUBSPOT_BASE_URL = "https://api.hubapi.com"


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message says which and how to set it."""


def env_int(name: str, default: int, minimum: int) -> int:
    """A whole-number setting from the environment (unset or empty: ``default``)."""
    raw = os.environ.get(name, "").strip() or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be {minimum} or more, got {value}")
    return value


def repo_root() -> Path:
    """The checkout this package runs from (``plugins/lead_scoring`` is two levels down)."""
    return Path(__file__).resolve().parents[2]


def dbt_project_dir() -> Path:
    return Path(os.environ.get("LEAD_SCORING_DBT_PROJECT_DIR", repo_root() / "dbt_project"))


def gx_context_dir() -> Path:
    return Path(os.environ.get("LEAD_SCORING_GX_DIR", repo_root() / "expectations"))


def local_dir() -> Path:
    """Git-ignored state of this checkout: embedded database, Airflow home, portal, demo data."""
    return Path(os.environ.get("LEAD_SCORING_LOCAL_DIR", repo_root() / ".local"))


@dataclass(frozen=True)
class WarehouseConfig:
    """How to reach the PostgreSQL warehouse."""

    host: str
    dbname: str
    user: str
    password: str | None = field(default=None, repr=False)
    port: int = 5432
    options: dict[str, str] = field(default_factory=dict)

    def conninfo(self) -> str:
        """A libpq connection string for psycopg (keyword form, so socket paths need no quoting)."""
        from psycopg.conninfo import make_conninfo

        params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
            "application_name": "lead_scoring",
            **self.options,
        }
        if self.password:
            params["password"] = self.password
        return make_conninfo("", **params)

    def sqlalchemy_url(self) -> str:
        """A SQLAlchemy URL (psycopg 3 driver) for Great Expectations."""
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        query = {"application_name": "lead_scoring_gx", **self.options}
        if self.host.startswith("/"):
            query["host"] = self.host
            netloc = f"{auth}@:{self.port}"
        else:
            netloc = f"{auth}@{self.host}:{self.port}"
        qs = "&".join(f"{k}={quote(str(v), safe='/')}" for k, v in query.items())
        return f"postgresql+psycopg://{netloc}/{quote(self.dbname, safe='')}?{qs}"

    def describe(self) -> str:
        """Where the warehouse is, for logs: never includes the password."""
        where = f"socket {self.host}" if self.host.startswith("/") else f"{self.host}:{self.port}"
        return f"postgres {self.user}@{where}/{self.dbname}"

    def to_airflow_json(self) -> str:
        """This configuration as an ``AIRFLOW_CONN_*`` JSON value."""
        doc: dict[str, Any] = {
            "conn_type": "postgres",
            "host": self.host,
            "port": self.port,
            "login": self.user,
            "schema": self.dbname,
            "password": self.password or "",
        }
        if self.options:
            doc["extra"] = dict(self.options)
        return json.dumps(doc)


@dataclass(frozen=True)
class CrmConfig:
    """How to reach the CRM API (HubSpot or the sandbox)."""

    base_url: str
    token: str = field(repr=False)

    def to_airflow_json(self) -> str:
        return json.dumps({"conn_type": "http", "host": self.base_url, "password": self.token})


def _conn_env_var(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def _read_conn_env(conn_id: str) -> dict[str, Any]:
    """Parse an ``AIRFLOW_CONN_*`` variable in Airflow's JSON or URI form."""
    var = _conn_env_var(conn_id)
    raw = os.environ.get(var)
    if not raw:
        raise ConfigError(
            f"connection '{conn_id}' is not set: export {var} (see .env.example) "
            "or define the connection in Airflow"
        )
    raw = raw.strip()
    if raw.startswith("{"):
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{var} is not valid JSON: {exc.msg} at column {exc.colno}") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"{var} must be a JSON object")
        return doc
    parts = urlsplit(raw)
    if not parts.scheme:
        raise ConfigError(f"{var} must be a JSON object or a URI like postgres://user@host/db")
    extra = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    return {
        "conn_type": parts.scheme,
        "host": unquote(parts.hostname or ""),
        "port": parts.port,
        "login": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "schema": unquote(parts.path.lstrip("/")),
        "extra": {k: unquote(v) for k, v in extra.items()},
    }


def _airflow_conn(conn_id: str) -> dict[str, Any]:
    """The connection as Airflow resolves it (env, secrets backend or metadata DB)."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    return {
        "conn_type": conn.conn_type,
        "host": conn.host,
        "port": conn.port,
        "login": conn.login,
        "password": conn.password,
        "schema": conn.schema,
        "extra": conn.extra_dejson,
    }


def _resolve(conn_id: str, via_airflow: bool) -> dict[str, Any]:
    return _airflow_conn(conn_id) if via_airflow else _read_conn_env(conn_id)


def warehouse_config(
    conn_id: str = WAREHOUSE_CONN_ID, *, via_airflow: bool = False
) -> WarehouseConfig:
    doc = _resolve(conn_id, via_airflow)
    host, dbname, user = doc.get("host"), doc.get("schema"), doc.get("login")
    missing = [k for k, v in (("host", host), ("schema", dbname), ("login", user)) if not v]
    if missing:
        raise ConfigError(f"connection '{conn_id}' lacks {', '.join(missing)}")
    extra = doc.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra) if extra.strip() else {}
    options = {k: str(v) for k, v in extra.items() if k in {"sslmode", "sslrootcert", "options"}}
    return WarehouseConfig(
        host=str(host),
        dbname=str(dbname),
        user=str(user),
        password=doc.get("password") or None,
        port=int(doc.get("port") or 5432),
        options=options,
    )


def crm_config(conn_id: str = CRM_CONN_ID, *, via_airflow: bool = False) -> CrmConfig:
    doc = _resolve(conn_id, via_airflow)
    token = doc.get("password")
    if not token:
        raise ConfigError(
            f"connection '{conn_id}' has no token: "
            "put the HubSpot private-app token in its password"
        )
    host = str(doc.get("host") or HUBSPOT_BASE_URL)
    if "://" not in host:
        # Airflow's HTTP connection convention: the scheme sits in `schema`, the port apart.
        scheme = doc.get("schema") if doc.get("schema") in ("http", "https") else "https"
        port = f":{doc['port']}" if doc.get("port") else ""
        host = f"{scheme}://{host}{port}"
    return CrmConfig(base_url=host.rstrip("/"), token=str(token))


@dataclass(frozen=True)
class SalesforceConfig:
    """How to reach a Salesforce org's Bulk API 2.0 (the sync's second target)."""

    instance_url: str
    token: str = field(repr=False)
    external_id: str = "DW_Lead_Key__c"
    api_version: str = "60.0"
    batch_size: int = 10_000


def salesforce_config(
    conn_id: str = SALESFORCE_CONN_ID, *, via_airflow: bool = False
) -> SalesforceConfig:
    """The org from a connection: ``host`` = the instance URL, ``password`` = an OAuth access
    token; ``extra`` may set ``external_id`` (default ``DW_Lead_Key__c``), ``api_version``
    (``60.0``) and ``batch_size`` (leads per ingest job, 10,000)."""
    doc = _resolve(conn_id, via_airflow)
    host, token = doc.get("host"), doc.get("password")
    if not host or not token:
        raise ConfigError(
            f"connection '{conn_id}' needs the org's instance URL as host and an OAuth access "
            "token as password"
        )
    extra = doc.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra) if extra.strip() else {}
    url = str(host) if "://" in str(host) else f"https://{host}"
    try:
        batch_size = int(extra.get("batch_size", 10_000))
    except (TypeError, ValueError):
        raise ConfigError(f"connection '{conn_id}': batch_size must be a whole number") from None
    if not 1 <= batch_size <= 150_000:
        raise ConfigError(f"connection '{conn_id}': batch_size must be 1..150000")
    return SalesforceConfig(
        instance_url=url.rstrip("/"),
        token=str(token),
        external_id=str(extra.get("external_id") or "DW_Lead_Key__c"),
        api_version=str(extra.get("api_version") or "60.0"),
        batch_size=batch_size,
    )


def sync_target_from_env() -> str:
    """``LEAD_SCORING_SYNC_TARGET``: the CRM the sync writes to, ``hubspot`` (default) or
    ``salesforce``."""
    target = (os.environ.get("LEAD_SCORING_SYNC_TARGET") or "hubspot").strip().lower()
    if target not in SYNC_TARGETS:
        raise ConfigError(
            f"LEAD_SCORING_SYNC_TARGET must be one of {', '.join(SYNC_TARGETS)}, got {target!r}"
        )
    return target
