"""When the demo cannot start, it says why in one line with the fix, and leaves nothing running."""

from __future__ import annotations

import socket
from pathlib import Path

import psutil
import pytest

from lead_scoring.runtime.demo import DemoError, DemoOptions, run_demo

pytestmark = pytest.mark.integration


def postgres_running_in(folder: Path) -> bool:
    for process in psutil.process_iter(attrs=["name", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if process.info["name"] == "postgres" and str(folder) in cmdline:
            return True
    return False


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_port_taken_is_one_clear_line_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEAD_SCORING_LOCAL_DIR", str(tmp_path))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(DemoError) as error:
            run_demo(DemoOptions(port=port))
    message = str(error.value)
    assert "\n" not in message
    assert f"port {port}" in message
    assert f"--port {port + 1}" in message
    assert not postgres_running_in(tmp_path)


def test_embedded_postgres_that_cannot_start_is_reported_and_nothing_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEAD_SCORING_LOCAL_DIR", str(tmp_path))
    (tmp_path / "pgdata").write_text("not a data folder")  # initdb cannot use it
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DemoError) as error:
        run_demo(DemoOptions(port=port))
    message = str(error.value)
    assert "\n" not in message
    assert "embedded PostgreSQL could not start" in message
    assert "Not a directory" in message  # PostgreSQL's own reason, not a traceback
    assert "make clean-local" in message
    assert port_is_free(port)  # the sandbox was never left listening
    assert not postgres_running_in(tmp_path)


def test_cli_turns_demo_errors_into_exit_code_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lead_scoring.cli import main

    monkeypatch.setenv("LEAD_SCORING_LOCAL_DIR", str(tmp_path))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        code = main(["demo", "--port", str(squatter.getsockname()[1])])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: port ")
    assert len(err.strip().splitlines()) == 1


def test_demo_reuses_its_dataset_only_when_it_is_the_one_asked_for(tmp_path: Path) -> None:
    import json
    from datetime import date

    from lead_scoring.runtime.demo import previous_dataset_end
    from lead_scoring.synth.generator import GENERATOR_VERSION

    manifest = tmp_path / "manifest.json"
    assert previous_dataset_end(tmp_path, DemoOptions()) is None
    document = {
        "generator_version": GENERATOR_VERSION,
        "config": {"seed": 42, "contacts": 1000, "end": "2026-01-31"},
    }
    manifest.write_text(json.dumps(document))
    assert previous_dataset_end(tmp_path, DemoOptions()) == date(2026, 1, 31)
    assert previous_dataset_end(tmp_path, DemoOptions(seed=7)) is None
    assert previous_dataset_end(tmp_path, DemoOptions(contacts=50)) is None
    manifest.write_text(json.dumps({**document, "generator_version": GENERATOR_VERSION - 1}))
    assert previous_dataset_end(tmp_path, DemoOptions()) is None
