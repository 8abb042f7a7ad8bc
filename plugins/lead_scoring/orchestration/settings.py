"""The DAG's operating settings, from environment variables read when the DAG file is parsed.

Only the environment is read here (no database, file or Variable), and every value is checked:
a typo in a schedule is a DAG import error naming the variable, not a DAG that silently never
runs.

| variable | default | what |
|---|---|---|
| ``LEAD_SCORING_SCHEDULE`` | ``@hourly`` | a cron preset or expression (UTC), or ``none`` |
| ``LEAD_SCORING_CATCHUP`` | ``false`` | let the scheduler run every missed interval |
| ``LEAD_SCORING_START_DATE`` | ``2026-01-01`` | the first interval catchup and backfills reach |
| ``LEAD_SCORING_TASK_RETRIES`` | ``2`` | retries per task (exponential backoff) |
| ``LEAD_SCORING_RETRY_DELAY_SECONDS`` | ``60`` | the first retry's delay |
| ``LEAD_SCORING_MAX_RETRY_DELAY_SECONDS`` | ``900`` | the longest delay backoff reaches |
| ``LEAD_SCORING_DBT_THREADS`` | ``4`` | models the one ``dbt build`` runs at once |
| ``LEAD_SCORING_FULL_CHECK_DAY`` | ``sunday`` | the day whose first run tests all history |

Each run covers one data interval of the schedule (``CronDataIntervalTimetable``): the run for
``[23:00, 24:00)`` starts at midnight and scores as of its interval's day, so the last run of a
day scores everything that day brought, and a backfill by logical date scores exactly the days
it names.

A run's dbt data tests check the rows it loaded or changed (``dbt_project/macros/check_scope.sql``);
the first run of ``LEAD_SCORING_FULL_CHECK_DAY`` (the run whose data interval reaches that day's
midnight, UTC), and any run triggered with ``full_checks``, tests the whole history instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from lead_scoring.config import ConfigError, env_int


def not_after(day: date) -> str:
    """A JSON-schema ``pattern`` that matches a ``YYYY-MM-DD`` date no later than ``day``.

    JSON schema cannot compare a date with today, and Airflow checks a trigger's params with
    JSON schema alone (the API server never imports the DAG's code). Dates of that shape sort
    as their strings do, so the bound is a regular expression: ``day`` itself, or the same
    digits up to some position and a smaller digit there. The DAG file builds it each time it
    is parsed (every 30 s by default), so a trigger for tomorrow is refused with the param's
    name; the tasks check the date again. ``day`` comes first, so the message shows the bound.
    """
    text = day.isoformat()
    choices = [text]
    for index, digit in enumerate(text):
        if digit in "-0":
            continue
        smaller = "0" if digit == "1" else f"[0-{int(digit) - 1}]"
        rest = "".join("-" if c == "-" else r"\d" for c in text[index + 1 :])
        choices.append(text[:index] + smaller + rest)
    return "^(?:" + "|".join(choices) + ")$"


PRESETS = ("@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _flag(name: str, default: bool) -> bool:
    raw = _env(name, "true" if default else "false").lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _schedule(raw: str, name: str = "LEAD_SCORING_SCHEDULE") -> str | None:
    """A cron preset or a five-field cron expression; ``none`` for manual runs only."""
    from croniter import croniter  # type: ignore[import-untyped]

    if raw.lower() == "none":
        return None
    if raw in PRESETS or (len(raw.split()) == 5 and croniter.is_valid(raw)):
        return raw
    raise ConfigError(
        f"{name} must be one of {', '.join(PRESETS)}, a cron expression such as "
        f"'0 6 * * *' (UTC), or 'none' for manual runs only; got {raw!r}"
    )


@dataclass(frozen=True)
class DagSettings:
    schedule: str | None
    catchup: bool
    start_date: date
    retries: int
    retry_delay: timedelta
    max_retry_delay: timedelta
    dbt_threads: int = 4
    full_check_weekday: int | None = 7  # ISO weekday (1 = Monday); None: only when asked

    def check_scope(
        self, full_checks: bool, interval_start: datetime | None, interval_end: datetime | None
    ) -> str:
        """``full`` for a run asked for full checks or the first run of the full-check day (its
        data interval reaches that day's midnight), else ``changed``."""
        if full_checks:
            return "full"
        if self.full_check_weekday is None or interval_start is None or interval_end is None:
            return "changed"
        midnight = datetime.combine(interval_end.date(), time.min, interval_end.tzinfo)
        reaches = interval_start < midnight <= interval_end
        return "full" if reaches and midnight.isoweekday() == self.full_check_weekday else "changed"

    def timetable(self) -> object | None:
        """One run per data interval of the schedule, in UTC (None: manual runs only)."""
        if self.schedule is None:
            return None
        from airflow.sdk import CronDataIntervalTimetable

        return CronDataIntervalTimetable(self.schedule, timezone="UTC")


def dag_settings_from_env() -> DagSettings:
    raw_start = _env("LEAD_SCORING_START_DATE", "2026-01-01")
    try:
        start = date.fromisoformat(raw_start)
    except ValueError:
        raise ConfigError(
            f"LEAD_SCORING_START_DATE must be a date like 2026-01-01, got {raw_start!r}"
        ) from None
    delay = env_int("LEAD_SCORING_RETRY_DELAY_SECONDS", 60, 0)
    longest = env_int("LEAD_SCORING_MAX_RETRY_DELAY_SECONDS", 900, 0)
    if longest < delay:
        raise ConfigError(
            f"LEAD_SCORING_MAX_RETRY_DELAY_SECONDS ({longest}) is shorter than "
            f"LEAD_SCORING_RETRY_DELAY_SECONDS ({delay})"
        )
    return DagSettings(
        schedule=_schedule(_env("LEAD_SCORING_SCHEDULE", "@hourly")),
        catchup=_flag("LEAD_SCORING_CATCHUP", False),
        start_date=start,
        retries=env_int("LEAD_SCORING_TASK_RETRIES", 2, 0),
        retry_delay=timedelta(seconds=delay),
        max_retry_delay=timedelta(seconds=longest),
        dbt_threads=env_int("LEAD_SCORING_DBT_THREADS", 4, 1),
        full_check_weekday=_weekday(_env("LEAD_SCORING_FULL_CHECK_DAY", "sunday")),
    )


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _weekday(raw: str, name: str = "LEAD_SCORING_FULL_CHECK_DAY") -> int | None:
    """An ISO weekday (1 = Monday) from its English name; ``none``: no weekly full check."""
    value = raw.strip().lower()
    if value == "none":
        return None
    if value in WEEKDAYS:
        return WEEKDAYS.index(value) + 1
    raise ConfigError(
        f"{name} must be a weekday name ({', '.join(WEEKDAYS)}) or 'none'; got {raw!r}"
    )


def backtest_schedule_from_env() -> str | None:
    """The weekly backtest DAG's schedule: ``LEAD_SCORING_BACKTEST_SCHEDULE`` (``@weekly``)."""
    return _schedule(
        _env("LEAD_SCORING_BACKTEST_SCHEDULE", "@weekly"), "LEAD_SCORING_BACKTEST_SCHEDULE"
    )
