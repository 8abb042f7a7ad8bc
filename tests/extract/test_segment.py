"""Every kind of bad Segment line lands in quarantine with its own reason; good ones load."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lead_scoring.extract.segment import parse_line, web_event_rows
from lead_scoring.load.batch import Rejected

NOW = datetime(2026, 6, 1, tzinfo=UTC)
GOOD = {
    "type": "track",
    "event": "Demo Requested",
    "anonymousId": "anon-1",
    "messageId": "m-1",
    "timestamp": "2026-05-31T10:00:00.000Z",
}


def line(event: object) -> bytes:
    return (json.dumps(event) + "\n").encode()


def test_a_good_track_event_becomes_a_row() -> None:
    row = parse_line(line(GOOD), "day.jsonl", 7, NOW)
    assert not isinstance(row, Rejected)
    (message_id, kind, name, anonymous_id, user_id, moment, raw, source_file, source_line, fmt) = (
        row
    )
    assert fmt == "segment"
    assert (message_id, kind, name, anonymous_id, user_id) == (
        "m-1",
        "track",
        "Demo Requested",
        "anon-1",
        None,
    )
    assert moment == datetime(2026, 5, 31, 10, tzinfo=UTC)
    assert json.loads(raw) == GOOD
    assert (source_file, source_line) == ("day.jsonl", 7)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"type": "track", "messageId": \n', "malformed_json"),
        (b"[1, 2, 3]\n", "malformed_json"),
        (b'{"type": "tr\xffck"}\n', "bad_encoding"),
        (line({**GOOD, "type": "purchase"}), "unknown_type"),
        (line({k: v for k, v in GOOD.items() if k != "messageId"}), "missing_message_id"),
        (line({k: v for k, v in GOOD.items() if k != "anonymousId"}), "missing_identity"),
        (line({k: v for k, v in GOOD.items() if k != "event"}), "missing_event_name"),
        (line({**GOOD, "timestamp": "last tuesday"}), "bad_timestamp"),
        (line({**GOOD, "timestamp": "2031-01-01T00:00:00Z"}), "future_timestamp"),
        (line({**GOOD, "properties": {"note": "a\u0000b"}}), "nul_character"),
        (line({**GOOD, "properties": {"blob": "x" * 70_000}}), "oversized_event"),
    ],
)
def test_bad_lines_are_rejected_with_their_reason(raw: bytes, reason: str) -> None:
    result = parse_line(raw, "day.jsonl", 3, NOW)
    assert isinstance(result, Rejected)
    assert result.reason == reason
    assert (result.source_file, result.source_line) == ("day.jsonl", 3)
    assert result.raw_payload  # the payload is kept, not dropped


def test_reads_plain_and_gzip_files_and_skips_blank_lines(tmp_path: Path) -> None:
    (tmp_path / "2026-05-30.jsonl").write_bytes(
        line(GOOD) + b"\n   \n" + line({**GOOD, "messageId": "m-2"})
    )
    with gzip.open(tmp_path / "2026-05-31.jsonl.gz", "wb") as handle:
        handle.write(line({**GOOD, "messageId": "m-3"}) + b"not json\n")
    (tmp_path / "notes.txt").write_text("ignored: not an export file")
    rows = list(web_event_rows(tmp_path, now=NOW))
    good = [r for r in rows if not isinstance(r, Rejected)]
    bad = [r for r in rows if isinstance(r, Rejected)]
    assert [r[0] for r in good] == ["m-1", "m-2", "m-3"]
    assert [(b.reason, b.source_file, b.source_line) for b in bad] == [
        ("malformed_json", "2026-05-31.jsonl.gz", 2)
    ]


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list(web_event_rows(tmp_path / "nowhere"))


GA4_ROW = {
    "event_date": "20260531",
    "event_timestamp": 1780221600123456,
    "event_name": "page_view",
    "event_params": [
        {"key": "page_location", "value": {"string_value": "https://ex.com/pricing?utm_source=g"}},
        {"key": "page_title", "value": {"string_value": "Pricing"}},
        {"key": "ga_session_id", "value": {"int_value": 1717}},
    ],
    "user_pseudo_id": "123.456",
    "user_id": None,
    "user_properties": [{"key": "email", "value": {"string_value": "a@x.com"}}],
}


def test_ga4_rows_become_segment_shaped_events(tmp_path: Path) -> None:
    click = {**GA4_ROW, "event_name": "generate_lead", "user_id": "u-9", "event_params": []}
    (tmp_path / "events_20260531.json").write_bytes(
        line(GA4_ROW) + line(GA4_ROW) + line(click) + line({**GA4_ROW, "event_timestamp": "soon"})
    )
    rows = list(web_event_rows(tmp_path, fmt="ga4", now=NOW))
    good = [r for r in rows if not isinstance(r, Rejected)]
    bad = [r for r in rows if isinstance(r, Rejected)]
    assert [r.reason for r in bad] == ["bad_timestamp"]
    page, again, lead = good
    assert page[0] == again[0]  # the same exported row twice: one messageId, deduplicated on load
    assert page[0] != lead[0]
    assert page[1:5] == ("page", "Pricing", "123.456", None)
    assert lead[1:5] == ("track", "generate_lead", "123.456", "u-9")
    assert page[5] == datetime(2026, 5, 31, 10, 0, 0, 123456, tzinfo=UTC)
    stored = json.loads(page[6])
    assert stored["context"]["page"]["path"] == "/pricing"
    assert stored["traits"] == {"email": "a@x.com"}
    assert stored["ga4"] == GA4_ROW  # the original row is kept whole
    assert page[9] == "ga4"


def test_reads_an_fsspec_url(tmp_path: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/export/2026/05/31/part-0.jsonl", line(GOOD) + line({**GOOD, "messageId": "m-2"}))
    fs.pipe("/export/2026/05/31/_SUCCESS", b"")
    try:
        rows = list(web_event_rows("memory://export", now=NOW))
    finally:
        fs.rm("/export", recursive=True)
    assert [(r[0], r[7]) for r in rows if not isinstance(r, Rejected)] == [
        ("m-1", "2026/05/31/part-0.jsonl"),
        ("m-2", "2026/05/31/part-0.jsonl"),
    ]
