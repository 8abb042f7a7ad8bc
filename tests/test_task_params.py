"""The task-side parameters: where the export is, its format, the logical interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from lead_scoring import tasks
from lead_scoring.config import ConfigError


def test_events_location_param_wins_over_env_and_urls_pass_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEAD_SCORING_EVENTS_PATH", "/data/segment")
    assert tasks.events_location(None) == "/data/segment"
    assert tasks.events_location("s3://bucket/segment-logs/") == "s3://bucket/segment-logs/"
    monkeypatch.delenv("LEAD_SCORING_EVENTS_PATH")
    with pytest.raises(ConfigError, match="LEAD_SCORING_EVENTS_PATH"):
        tasks.events_location(None)


def test_events_format_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tasks.events_format(None) == "segment"
    monkeypatch.setenv("LEAD_SCORING_EVENTS_FORMAT", "ga4")
    assert tasks.events_format(None) == "ga4"
    with pytest.raises(ConfigError, match="'segment' or 'ga4'"):
        tasks.events_format("csv")


def test_logical_interval_is_utc_and_optional() -> None:
    paris = timezone(timedelta(hours=2))
    interval = tasks.logical_interval(
        datetime(2026, 6, 1, 2, tzinfo=paris), datetime(2026, 6, 2, 2, tzinfo=paris)
    )
    assert interval is not None
    assert interval.start == datetime(2026, 6, 1, tzinfo=UTC)
    assert interval.start.tzinfo == UTC
    assert tasks.logical_interval(None, None) is None
    with pytest.raises(ValueError, match="before it starts"):
        tasks.logical_interval(datetime(2026, 6, 2, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC))
