"""The command line: every subcommand has help, bad arguments fail clearly."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lead_scoring.cli import build_parser, main

SUBCOMMANDS = ["demo", "backtest", "sandbox", "synth", "dbt-parse", "dbt-lint", "quality-init"]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: lead-scoring" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["synth", "--contacts", "0"], "must be at least 1"),
        (["synth", "--contacts", "many"], "expected a whole number"),
        (["demo", "--port", "70000"], "at most 65535"),
        (["demo", "--as-of", "yesterday"], "expected a date"),
        (["frobnicate"], "invalid choice"),
        (["backtest", "--ruleset", "rules/draft"], "write NAME=FOLDER"),
        (["backtest", "--ruleset", "draft=/no/such/folder"], "is not a folder"),
        (["backtest", "--cadence", "daily"], "invalid choice"),
        (["backtest", "--maturity-days", "0"], "must be at least 1"),
        (["backtest", "--end", "soon"], "expected a date"),
    ],
)
def test_bad_arguments_exit_2_with_a_reason(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_synth_without_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEAD_SCORING_SANDBOX_TOKEN", raising=False)
    with pytest.raises(SystemExit, match="no token"):
        main(["synth", "--contacts", "1"])


def test_synth_reports_an_unreachable_sandbox(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["synth", "--contacts", "1", "--token", "t", "--crm-url", "http://127.0.0.1:9"])
    assert code == 1
    assert "cannot reach the sandbox" in capsys.readouterr().err


def test_module_entry_point_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lead_scoring", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.startswith("lead-scoring ")


def test_parser_lists_all_subcommands() -> None:
    help_text = build_parser().format_help()
    for command in SUBCOMMANDS:
        assert command in help_text
