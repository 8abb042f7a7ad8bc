"""The DAG's schedule, catchup and retries come from the environment, checked when it is parsed."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from lead_scoring.config import ConfigError
from lead_scoring.orchestration.settings import dag_settings_from_env

REPO = Path(__file__).resolve().parents[2]
VARIABLES = (
    "LEAD_SCORING_SCHEDULE",
    "LEAD_SCORING_CATCHUP",
    "LEAD_SCORING_START_DATE",
    "LEAD_SCORING_TASK_RETRIES",
    "LEAD_SCORING_RETRY_DELAY_SECONDS",
    "LEAD_SCORING_MAX_RETRY_DELAY_SECONDS",
    "LEAD_SCORING_DBT_THREADS",
    "LEAD_SCORING_FULL_CHECK_DAY",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_are_hourly_no_catchup_and_two_retries_with_backoff(
    clean_env: pytest.MonkeyPatch,
) -> None:
    settings = dag_settings_from_env()
    assert settings.schedule == "@hourly"
    assert settings.catchup is False
    assert settings.start_date == date(2026, 1, 1)
    assert settings.retries == 2
    assert (settings.retry_delay, settings.max_retry_delay) == (
        timedelta(minutes=1),
        timedelta(minutes=15),
    )
    timetable = settings.timetable()
    assert type(timetable).__name__ == "CronDataIntervalTimetable"
    assert "0 * * * *" in repr(timetable)


def test_every_setting_can_be_changed(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("LEAD_SCORING_SCHEDULE", "30 5 * * 1-5")
    clean_env.setenv("LEAD_SCORING_CATCHUP", "true")
    clean_env.setenv("LEAD_SCORING_START_DATE", "2025-10-01")
    clean_env.setenv("LEAD_SCORING_TASK_RETRIES", "4")
    clean_env.setenv("LEAD_SCORING_RETRY_DELAY_SECONDS", "5")
    clean_env.setenv("LEAD_SCORING_MAX_RETRY_DELAY_SECONDS", "60")
    assert dag_settings_from_env().dbt_threads == 4
    clean_env.setenv("LEAD_SCORING_DBT_THREADS", "2")
    settings = dag_settings_from_env()
    assert settings.dbt_threads == 2
    assert (settings.schedule, settings.catchup, settings.start_date, settings.retries) == (
        "30 5 * * 1-5",
        True,
        date(2025, 10, 1),
        4,
    )
    assert settings.max_retry_delay == timedelta(minutes=1)
    clean_env.setenv("LEAD_SCORING_SCHEDULE", "none")
    assert dag_settings_from_env().timetable() is None


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)  # 2026-11-01 is a Sunday


def test_the_first_run_of_the_full_check_day_tests_everything(
    clean_env: pytest.MonkeyPatch,
) -> None:
    settings = dag_settings_from_env()
    # hourly: the run of [Sat 23:00, Sun 00:00) reaches Sunday's midnight; the next does not
    assert settings.check_scope(False, at(7, 23), at(8)) == "full"
    assert settings.check_scope(False, at(8), at(8, 1)) == "changed"
    assert settings.check_scope(False, at(6, 23), at(7)) == "changed"  # into Saturday
    # daily: the run of [Sat, Sun)
    assert settings.check_scope(False, at(7), at(8)) == "full"
    # asked for, or no interval (a manual run)
    assert settings.check_scope(True, at(3), at(3, 1)) == "full"
    assert settings.check_scope(False, None, None) == "changed"
    clean_env.setenv("LEAD_SCORING_FULL_CHECK_DAY", "Wednesday")
    assert dag_settings_from_env().check_scope(False, at(3, 23), at(4)) == "full"
    clean_env.setenv("LEAD_SCORING_FULL_CHECK_DAY", "none")
    assert dag_settings_from_env().check_scope(False, at(7, 23), at(8)) == "changed"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LEAD_SCORING_SCHEDULE", "hourly", "LEAD_SCORING_SCHEDULE must be one of"),
        ("LEAD_SCORING_SCHEDULE", "61 * * * *", "cron expression"),
        ("LEAD_SCORING_CATCHUP", "maybe", "LEAD_SCORING_CATCHUP must be true or false"),
        ("LEAD_SCORING_START_DATE", "01/01/2026", "LEAD_SCORING_START_DATE must be a date"),
        ("LEAD_SCORING_TASK_RETRIES", "-1", "LEAD_SCORING_TASK_RETRIES must be 0 or more"),
        ("LEAD_SCORING_RETRY_DELAY_SECONDS", "1m", "must be a whole number"),
        ("LEAD_SCORING_RETRY_DELAY_SECONDS", "1000", "is shorter than"),
        ("LEAD_SCORING_DBT_THREADS", "0", "LEAD_SCORING_DBT_THREADS must be 1 or more"),
        ("LEAD_SCORING_FULL_CHECK_DAY", "sun", "LEAD_SCORING_FULL_CHECK_DAY must be a weekday"),
    ],
)
def test_bad_values_are_clear_errors(
    clean_env: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        dag_settings_from_env()


def test_a_bad_schedule_is_a_dag_import_error_naming_the_variable(dbt_manifest: Path) -> None:
    probe = (
        "from airflow.dag_processing.dagbag import DagBag;"
        "bag = DagBag(dag_folder='dags');"
        "print('ERRORS=' + ' | '.join(str(e) for e in bag.import_errors.values()));"
        "print('DAGS=' + ','.join(bag.dags))"
    )
    env = {**os.environ, "LEAD_SCORING_SCHEDULE": "every hour"}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    dags = done.stdout.rsplit("DAGS=", 1)[1].split()
    assert "lead_scoring" not in ",".join(dags).split(",")  # the other DAG still loads
    assert "LEAD_SCORING_SCHEDULE must be one of" in done.stdout
    good = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        env={**os.environ, "LEAD_SCORING_SCHEDULE": "@daily"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert set(good.stdout.rsplit("DAGS=", 1)[1].strip().split(",")) == {
        "lead_scoring",
        "lead_scoring_backtest",
    }
    weekly = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        env={**os.environ, "LEAD_SCORING_BACKTEST_SCHEDULE": "weekly-ish"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "LEAD_SCORING_BACKTEST_SCHEDULE must be one of" in weekly.stdout
