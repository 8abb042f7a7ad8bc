"""Validate a ruleset folder (the seed CSVs) before any scoring, with messages a rules author
can act on: the file, the line, the rule id, the column and the bad value.

What is allowed is not restated here: it is read from the dbt project, the one place that
says it. Each seed's column types come from ``dbt_project.yml`` (``+column_types``), its
``not_null``, ``unique``, ``accepted_values`` and ``relationships`` tests and its generic
``rule_attribute`` test from ``seeds/_rules__seeds.yml``, and the lists behind
``rule_operators()`` and ``rule_attributes()`` from ``macros/rules.sql``. dbt runs the same
tests on the loaded seeds; this runs them on the files, first, and says where.

A folder may hold only some of the files (a draft that changes two rules files): the others
come from the production seeds, as in a backtest.
"""

from __future__ import annotations

import ast
import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lead_scoring.config import dbt_project_dir

MACRO_LIST = re.compile(r"macro (rule_\w+)\(\)\s*-?%\}\s*\{\{\s*return\((\[.*?\])\)", re.S)
NUMERIC_OPERATORS = frozenset({"gte", "gt", "lte", "lt"})
PROPERTY_ATTRIBUTE = re.compile(r"^prop:[A-Za-z0-9_]+$")
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


@dataclass(frozen=True)
class Problem:
    """One bad value: where it is and why."""

    file: str
    line: int
    rule_id: str | None
    column: str
    value: str
    reason: str

    def __str__(self) -> str:
        rule = f", rule {self.rule_id}" if self.rule_id else ""
        return f"{self.file}:{self.line}{rule}, column {self.column}: {self.value!r} {self.reason}"


class RulesetError(ValueError):
    """A ruleset that must not be scored; ``problems`` says where each fault is."""

    def __init__(self, folder: Path, problems: list[Problem]) -> None:
        self.problems = problems
        shown = "\n  ".join(str(p) for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(
            f"the ruleset in {folder} has {len(problems)} problem(s):\n  {shown}{more}"
        )


def _macro_lists(project: Path) -> dict[str, list[str]]:
    text = (project / "macros" / "rules.sql").read_text()
    return {name: list(ast.literal_eval(values)) for name, values in MACRO_LIST.findall(text)}


def _seed_specs(project: Path) -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load((project / "seeds" / "_rules__seeds.yml").read_text())
    return {seed["name"]: seed for seed in doc.get("seeds", [])}


def _column_types(project: Path) -> dict[str, dict[str, str]]:
    doc = yaml.safe_load((project / "dbt_project.yml").read_text())
    seeds = doc["seeds"][doc["name"]]
    return {
        name: dict(config.get("+column_types", {}))
        for name, config in seeds.items()
        if isinstance(config, dict)
    }


def ruleset_files(folder: Path, project: Path | None = None) -> dict[str, Path]:
    """Seed name -> the CSV that defines it: the folder's own, else production's."""
    project = project or dbt_project_dir()
    files = {path.stem: path for path in sorted((project / "seeds").glob("*.csv"))}
    files.update({path.stem: path for path in sorted(folder.glob("*.csv"))})
    return files


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            yield line, {key: (value or "") for key, value in row.items() if key is not None}


def _tests(column: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for test in column.get("data_tests") or []:
        if isinstance(test, str):
            yield test, {}
        else:
            for name, config in test.items():
                yield name, (config or {}).get("arguments", config or {})


def validate_ruleset(folder: Path, project: Path | None = None) -> int:
    """Check every seed file the ruleset in ``folder`` is made of; returns the number of rows
    checked, or raises ``RulesetError`` listing every problem found."""
    project = project or dbt_project_dir()
    if not folder.is_dir():
        raise RulesetError(
            folder, [Problem(str(folder), 0, None, "-", str(folder), "is not a folder")]
        )
    lists = _macro_lists(project)
    specs = _seed_specs(project)
    types = _column_types(project)
    files = ruleset_files(folder, project)
    tables = {name: list(_rows(path)) for name, path in files.items()}
    problems: list[Problem] = []
    checked = 0
    for name, path in files.items():
        shown = (
            str(path.relative_to(project.parent))
            if path.is_relative_to(project.parent)
            else str(path)
        )
        spec = specs.get(name, {})
        columns = {column["name"]: column for column in spec.get("columns", [])}
        with path.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), [])
        for missing in [c for c in types.get(name, {}) if c not in header]:
            problems.append(Problem(shown, 1, None, missing, "", "is a column the file must have"))
        seen: dict[str, dict[str, int]] = {}
        keys = [
            list(arguments.get("combination_of_columns", []))
            for test, arguments in _tests(spec)
            if test == "unique_combination_of_columns"
        ]
        for line, row in tables[name]:
            checked += 1
            rule_id = row.get("rule_id") or None

            def bad(
                column: str,
                reason: str,
                *,
                line: int = line,
                rule_id: str | None = rule_id,
                row: dict[str, str] = row,
                shown: str = shown,
            ) -> None:
                problems.append(Problem(shown, line, rule_id, column, row.get(column, ""), reason))

            for column, kind in types.get(name, {}).items():
                value = row.get(column, "")
                if value == "":
                    continue
                if kind == "integer" and not re.fullmatch(r"-?\d+", value.strip()):
                    bad(column, "is not a whole number")
                if kind == "boolean" and value.strip().lower() not in ("true", "false"):
                    bad(column, "is not true or false")
            for column, spec_column in columns.items():
                value = row.get(column, "")
                for test, arguments in _tests(spec_column):
                    if test == "not_null" and value == "":
                        bad(column, "is empty; it is required")
                    elif test == "unique" and value:
                        first = seen.setdefault(column, {}).setdefault(value, line)
                        if first != line:
                            bad(column, f"is used again (first on line {first})")
                    elif test == "accepted_values" and value:
                        given = arguments.get("values") or []
                        if isinstance(given, str):
                            macro = re.search(r"(rule_\w+)\(\)", given)
                            given = lists.get(macro.group(1), []) if macro else []
                        allowed = [str(a) for a in given]
                        if value not in allowed:
                            bad(column, f"is not one of: {', '.join(allowed)}")
                    elif test == "rule_attribute" and value:
                        known = lists.get("rule_attributes", [])
                        if value not in known and not PROPERTY_ATTRIBUTE.match(value):
                            bad(
                                column,
                                "is not an attribute rules can test "
                                f"({', '.join(known)}, or prop:<name>)",
                            )
                    elif test == "relationships" and value:
                        target = re.search(r"ref\('(\w+)'\)", str(arguments.get("to", "")))
                        field = str(arguments.get("field", column))
                        if target and target.group(1) in tables:
                            known_keys = {r.get(field) for _, r in tables[target.group(1)]}
                            if value not in known_keys:
                                bad(column, f"is not a {field} of {target.group(1)}.csv")
            for key in keys:
                combination = "|".join(row.get(column, "") for column in key)
                first = seen.setdefault("+".join(key), {}).setdefault(combination, line)
                if first != line:
                    bad(
                        key[-1],
                        f"is used again for this {', '.join(key[:-1]) or 'file'} "
                        f"(first on line {first})",
                    )
            operator, value = row.get("operator"), row.get("rule_value", "")
            if operator == "between" and not re.fullmatch(r"-?\d+(\.\d+)?\.\.-?\d+(\.\d+)?", value):
                bad("rule_value", "is not a range like 50..499 (operator between)")
            elif operator in NUMERIC_OPERATORS and not NUMBER.match(value):
                bad("rule_value", f"is not a number (operator {operator})")
    if problems:
        raise RulesetError(folder, problems)
    return checked
