"""The dbt project keeps the rules of dbt-labs/dbt-project-evaluator that STYLE.md asks for
(the package itself cannot be installed here): checked on the parsed manifest."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def manifest(dbt_manifest: Path) -> dict[str, Any]:
    return dict(json.loads(dbt_manifest.read_text()))


def models(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["package_name"] == "lead_scoring"
    ]


def layer(node: dict[str, Any]) -> str:
    return str(node["original_file_path"]).split("/")[1]


def test_sources_are_read_in_staging_only_and_staging_reads_nothing_else(
    manifest: dict[str, Any],
) -> None:
    assert len(models(manifest)) >= 25  # the checks below see the whole project
    for node in models(manifest):
        parents = node["depends_on"]["nodes"]
        reads_source = any(p.startswith("source.") for p in parents)
        if layer(node) == "staging":
            assert all(p.startswith("source.") for p in parents), node["name"]
        else:
            assert not reads_source, f"{node['name']} reads a source outside staging"


def test_no_hard_coded_relations(manifest: dict[str, Any]) -> None:
    hard_coded = re.compile(r"\b(raw_crm|raw_analytics|lead_scoring_\w+)\.\w+", re.IGNORECASE)
    for node in models(manifest):
        assert not hard_coded.search(node["raw_code"]), node["name"]


def enforced_primary_key(node: dict[str, Any]) -> bool:
    """A contracted model whose primary key the warehouse enforces (a constraint)."""
    if not node["config"].get("contract", {}).get("enforced"):
        return False
    constraints = list(node.get("constraints") or [])
    for column in node["columns"].values():
        constraints += column.get("constraints") or []
    return any(c["type"] == "primary_key" for c in constraints)


def test_every_model_has_a_primary_key_test(manifest: dict[str, Any]) -> None:
    """A unique + not_null pair or a grain test, an enforced primary key, or (for a view whose
    rows a table unions, or that shows a table's rows one for one) `meta.grain_tested_by`
    naming that table, which must read the view (or be read by it) and test its grain."""
    tested: dict[str, set[str]] = {}
    for node in manifest["nodes"].values():
        meta = node.get("test_metadata") or {}
        if node["resource_type"] != "test" or not meta:
            continue
        target = node.get("attached_node") or ""
        if meta["name"] == "unique_combination_of_columns":
            tested.setdefault(target, set()).add("*grain*")
        elif meta["name"] in ("unique", "not_null"):
            tested.setdefault(target, set()).add(f"{meta['name']}:{node['column_name']}")

    def has_pk_test(unique_id: str) -> bool:
        found = tested.get(unique_id, set())
        columns = {entry.split(":", 1)[1] for entry in found if ":" in entry}
        return "*grain*" in found or any({f"unique:{c}", f"not_null:{c}"} <= found for c in columns)

    by_name = {node["name"]: node for node in models(manifest)}
    checked_elsewhere = 0
    for node in models(manifest):
        if has_pk_test(node["unique_id"]) or enforced_primary_key(node):
            continue
        union_name = node["config"].get("meta", {}).get("grain_tested_by")
        union = by_name.get(union_name or "")
        assert union is not None, f"{node['name']} has no primary-key (or grain) test"
        # the table reads the view (the line views) or the view the table (the dated lines)
        linked = {node["unique_id"], union["unique_id"]}
        assert linked & {*union["depends_on"]["nodes"], *node["depends_on"]["nodes"]}, node["name"]
        assert has_pk_test(union["unique_id"]), union_name
        checked_elsewhere += 1
    # the score-line views and the dated view of the projected lines, not a way around the rule
    assert checked_elsewhere <= 5


def test_every_model_and_column_is_described(manifest: dict[str, Any]) -> None:
    for node in models(manifest):
        assert node["description"].strip(), f"{node['name']} has no description"
        assert node["columns"], f"{node['name']} documents no columns"
        for name, column in node["columns"].items():
            assert column["description"].strip(), f"{node['name']}.{name} has no description"
