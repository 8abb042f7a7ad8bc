"""Connections come from Airflow's env-var forms and never leak secrets into reprs or logs."""

from __future__ import annotations

import json

import pytest

from lead_scoring.config import ConfigError, WarehouseConfig, crm_config, warehouse_config


def test_warehouse_from_json_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAREHOUSE",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": "db.internal",
                "port": 6543,
                "login": "scorer",
                "password": "s3cret",
                "schema": "analytics",
                "extra": {"sslmode": "require"},
            }
        ),
    )
    config = warehouse_config()
    assert (config.host, config.port, config.user, config.dbname) == (
        "db.internal",
        6543,
        "scorer",
        "analytics",
    )
    assert "sslmode=require" in config.conninfo()
    assert "s3cret" not in repr(config)
    assert "s3cret" not in config.describe()


def test_warehouse_from_uri_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAREHOUSE", "postgres://scorer:p%40ss@db.internal:5432/analytics"
    )
    config = warehouse_config()
    assert config.password == "p@ss"
    assert config.dbname == "analytics"


def test_socket_host_makes_a_valid_sqlalchemy_url() -> None:
    config = WarehouseConfig(host="/srv/pg socket", dbname="warehouse", user="u", password="p w")
    url = config.sqlalchemy_url()
    assert url.startswith("postgresql+psycopg://u:p%20w@:5432/warehouse?")
    assert "host=/srv/pg%20socket" in url


def test_missing_connection_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_WAREHOUSE", raising=False)
    with pytest.raises(ConfigError, match="AIRFLOW_CONN_WAREHOUSE"):
        warehouse_config()


def test_bad_json_connection_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", '{"host": ')
    with pytest.raises(ConfigError, match="not valid JSON"):
        warehouse_config()


def test_crm_token_required_and_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_CRM", json.dumps({"conn_type": "http", "host": "api.hubapi.com"})
    )
    with pytest.raises(ConfigError, match="no token"):
        crm_config()
    monkeypatch.setenv(
        "AIRFLOW_CONN_CRM",
        json.dumps({"conn_type": "http", "host": "api.hubapi.com", "password": "pat-x"}),
    )
    config = crm_config()
    assert config.base_url == "https://api.hubapi.com"
    assert "pat-x" not in repr(config)


def test_crm_http_connection_scheme_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_CRM",
        json.dumps(
            {
                "conn_type": "http",
                "host": "127.0.0.1",
                "schema": "http",
                "port": 8765,
                "password": "t",
            }
        ),
    )
    assert crm_config().base_url == "http://127.0.0.1:8765"
