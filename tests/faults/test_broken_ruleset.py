"""A broken ruleset fails before any scoring (issue 20, defect 10), naming the file, the line,
the rule id, the column and the bad value: from the CLI (a pull-request check) and from the
DAG's first task. Before, an unknown operator failed a dbt test after the extracts ran with
`accepted_values_demographic_rules_operator___rule_operators_: Got 1 result`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lead_scoring import tasks
from lead_scoring.cli import main
from lead_scoring.config import dbt_project_dir
from lead_scoring.rules.validate import RulesetError


def broken_draft(folder: Path) -> Path:
    """A draft ruleset folder whose demographic rules hold four kinds of mistake."""
    folder.mkdir(parents=True)
    seed = (dbt_project_dir() / "seeds" / "demographic_rules.csv").read_text().splitlines()
    header = seed[0].split(",")
    rows = [line.split(",") for line in seed[1:4]]
    rows[0][header.index("operator")] = "startswith"
    rows[1][header.index("points")] = "ten"
    rows[2][header.index("scoring_model_id")] = "no_such_model"
    rows.append(seed[1].split(","))  # line 2's rule id again, for the same model
    lines = [seed[0], *(",".join(r) for r in rows)]
    (folder / "demographic_rules.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_the_cli_names_file_line_rule_column_and_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "validate"]) == 0  # the shipped ruleset is valid
    assert "no problems" in capsys.readouterr().out
    for shipped in ("uci_bank_marketing", "olist_marketing_funnel"):
        assert main(["rules", "validate", str(dbt_project_dir() / "rulesets" / shipped)]) == 0

    draft = broken_draft(tmp_path / "draft")
    rule_ids = [
        line.split(",")[1]
        for line in (draft / "demographic_rules.csv").read_text().splitlines()[1:]
    ]
    assert main(["rules", "validate", str(draft)]) == 1
    err = capsys.readouterr().err
    assert "4 problem(s)" in err
    assert (
        f"demographic_rules.csv:2, rule {rule_ids[0]}, column operator: 'startswith' is not one of"
        in err
    )
    assert (
        f"demographic_rules.csv:3, rule {rule_ids[1]}, column points: 'ten' is not a whole number"
        in err
    )
    assert (
        f"demographic_rules.csv:4, rule {rule_ids[2]}, column scoring_model_id: 'no_such_model'"
        in err
    )
    assert (
        f"demographic_rules.csv:5, rule {rule_ids[3]}, column rule_id: '{rule_ids[3]}' "
        "is used again for this scoring_model_id (first on line 2)" in err
    )

    assert main(["rules", "validate", str(tmp_path / "nowhere")]) == 1
    assert "is not a folder" in capsys.readouterr().err


def test_the_dags_first_task_refuses_a_broken_ruleset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "dbt_project"
    shutil.copytree(dbt_project_dir(), project, ignore=shutil.ignore_patterns("target", "logs"))
    shutil.copy(broken_draft(tmp_path / "draft") / "demographic_rules.csv", project / "seeds")
    monkeypatch.setenv("LEAD_SCORING_DBT_PROJECT_DIR", str(project))
    with pytest.raises(RulesetError) as refused:
        tasks.check_rules()
    assert "column operator: 'startswith'" in str(refused.value)
    assert len(refused.value.problems) == 4
