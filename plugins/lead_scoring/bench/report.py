"""Figures out of the cycles, and their tables in BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lead_scoring.bench.harness import Cycle, Dataset

LOADS = ("extract_contacts", "extract_email_events", "load_web_events")
# The Python stages whose peak RSS is reported (each ran in a process of its own).
PYTHON_STAGES = {
    "extract_contacts": "extract contacts (CRM API, full refresh)",
    "extract_email_events": "extract email events (CRM API)",
    "load_web_events": "load web events (Segment files)",
    "raw_gate": "raw gate (GX)",
    "full_build": "full dbt build (the dbt process)",
    "daily_build": "dbt build after 1% new events",
    "score_gate": "score gate (GX)",
    "sync": "sync (all contacts changed)",
}
RSS_LIMIT_MB = 1024


def machine_description() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


@dataclass
class Figure:
    """One figure over the runs: the median, with min and max."""

    name: str
    values: list[float]
    fmt: str = ",.1f"
    unit: str = ""
    target: str = ""
    met: bool | None = None

    @property
    def median(self) -> float:
        return float(statistics.median(self.values))

    def show(self, value: float) -> str:
        if self.unit == "%":
            return f"{value:.0%}"
        return f"{value:{self.fmt}}{self.unit}"

    @property
    def spread(self) -> str:
        if len(self.values) < 2:
            return ""
        return f"{self.show(min(self.values))} - {self.show(max(self.values))}"


def figures(cycles: list[Cycle], rate_limit: int) -> list[Figure]:
    """Every figure of the report, computed per run, then summarised over the runs."""
    ceiling = rate_limit * 100 / 10

    def each(compute: Callable[[dict[str, Any]], float]) -> list[float]:
        return [compute(c.stages) for c in cycles]

    def seconds(stage: str) -> list[float]:
        return each(lambda s: s[stage]["seconds"])

    def rate(stage: str) -> list[float]:
        return each(lambda s: s[stage]["records"] / s[stage]["seconds"])

    def load_rate(s: dict[str, Any]) -> float:
        return float(sum(s[n]["records"] for n in LOADS) / sum(s[n]["seconds"] for n in LOADS))

    def copy_rate(s: dict[str, Any]) -> float:
        return float(s["copy_floor"]["records"] / s["copy_floor"]["seconds"])

    def sync_rate(s: dict[str, Any]) -> float:
        return float(s["sync"]["accepted"] / s["sync"]["seconds"])

    load_share = each(lambda s: load_rate(s) / copy_rate(s))
    build_ratio = each(lambda s: s["full_build"]["seconds"] / s["bare_pass"]["seconds"])
    daily_share = each(lambda s: s["daily_build"]["seconds"] / s["full_build"]["seconds"])
    daily_ratio = each(lambda s: s["daily_build"]["seconds"] / s["bare_pass"]["seconds"])
    size_ratio = each(
        lambda s: s["size_after_full"]["warehouse_bytes"] / s["size_after_full"]["raw_bytes"]
    )
    growth = each(
        lambda s: (
            s["size_after_daily_build"]["warehouse_bytes"]
            / s["size_after_first_daily_build"]["warehouse_bytes"]
            - 1
        )
    )
    gib = [v / 2**30 for v in each(lambda s: s["size_after_full"]["warehouse_bytes"])]
    sync_share = each(lambda s: sync_rate(s) / ceiling)
    unchanged = each(lambda s: s["sync_unchanged"]["write_calls"])
    peak = each(lambda s: max(s[n]["peak_rss_mb"] for n in PYTHON_STAGES))
    median = statistics.median
    per_s = ",.0f"
    return [
        Figure("extract + load, records/s", each(load_rate), per_s),
        Figure("  contacts from the CRM API, records/s", rate("extract_contacts"), per_s),
        Figure("  email events from the CRM API, records/s", rate("extract_email_events"), per_s),
        Figure("  web events from the export files, records/s", rate("load_web_events"), per_s),
        Figure("plain COPY of the same rows (floor), records/s", each(copy_rate), per_s),
        Figure("extract + load, of plain COPY", load_share, unit="%", target=">= 50%",
               met=median(load_share) >= 0.5),
        Figure("full dbt build, s", seconds("full_build")),
        Figure("bare aggregate pass over the events (floor), s", seconds("bare_pass")),
        Figure("full build, multiple of the bare pass", build_ratio, unit="x", target="<= 6x",
               met=median(build_ratio) <= 6),
        Figure("dbt build after 1% new events, s", seconds("daily_build")),
        Figure("build after 1% new events, of the full build", daily_share, unit="%",
               target="<= 15%", met=median(daily_share) <= 0.15),
        Figure("build after 1% new events, multiple of the bare pass", daily_ratio, unit="x",
               target="<= 2x", met=median(daily_ratio) <= 2),
        Figure("dbt's fixed cost per run (a build of no node), s", seconds("dbt_fixed_cost")),
        Figure("warehouse after the full build, GiB", gib, ",.2f"),
        Figure("warehouse, multiple of its raw tables", size_ratio, unit="x", target="<= 2x",
               met=median(size_ratio) <= 2),
        Figure("warehouse growth of a run with 1% new events", growth, unit="%",
               target="<= 2%", met=median(growth) <= 0.02),
        Figure("raw gate, s", seconds("raw_gate")),
        Figure("score gate, s", seconds("score_gate")),
        Figure("sync, contacts accepted/s", each(sync_rate), per_s),
        Figure(f"sync, of the rate-limit ceiling ({ceiling:,.0f} contacts/s)", sync_share,
               unit="%", target=">= 90%", met=median(sync_share) >= 0.9),
        Figure("429 answers during the sync", each(lambda s: s["sync"]["server_429"]), per_s),
        Figure("write requests of a sync with nothing changed", unchanged, per_s, target="0",
               met=max(unchanged) == 0),
        Figure("largest peak RSS of a Python stage, MB", peak, per_s,
               target=f"<= {RSS_LIMIT_MB:,}", met=max(peak) <= RSS_LIMIT_MB),
    ]  # fmt: skip


def _gate_verdicts(cycles: list[Cycle]) -> str:
    verdicts = []
    for gate in ("raw_gate", "score_gate"):
        failed = [c for c in cycles if not c.stages[gate]["passed"]]
        if failed:
            reasons = sorted({r for c in failed for r in c.stages[gate]["failures"]})
            verdicts.append(f"The {gate.replace('_', ' ')} failed in {len(failed)} run(s): "
                            + "; ".join(reasons))  # fmt: skip
    return (" " + " ".join(verdicts) + ".") if verdicts else " Both gates passed in every run."


def size_section(
    data: Dataset,
    cycles: list[Cycle],
    *,
    rate_limit: int,
    revision: str,
    command: str,
    generated: str,
) -> tuple[str, str]:
    """(heading, section) of one size's results."""
    heading = f"## {data.contacts:,} contacts"
    last = cycles[-1].stages
    rows = last["rows"]
    lines = [
        heading,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine_description()}; "
        f"embedded PostgreSQL (pgserver, default settings), CRM sandbox in its own process. "
        f"Revision {revision}. Command: `{command}`.",
        "",
        f"Data: {data.contacts:,} contacts, {data.web_events + data.email_events:,} events "
        f"({data.web_events:,} web, {data.email_events:,} email; {generated}). "
        f"Each daily run adds about {last['daily_build']['added']:,} events (1%). "
        f"Median of {len(cycles)} runs, min - max.{_gate_verdicts(cycles)}",
        "",
        "| figure | median | min - max | target (at 1M contacts) | met here |",
        "|---|---:|---:|---:|:---:|",
    ]
    for figure in figures(cycles, rate_limit):
        met = "" if figure.met is None else ("yes" if figure.met else "**no**")
        lines.append(
            f"| {figure.name} | {figure.show(figure.median)} | {figure.spread} "
            f"| {figure.target} | {met} |"
        )
    lines += [
        "",
        "Peak RSS of each Python stage (MB; the build stages' figure is the dbt process):",
        "",
        "| stage | median | min - max |",
        "|---|---:|---:|",
    ]
    for name, label in PYTHON_STAGES.items():
        rss = Figure(label, [c.stages[name]["peak_rss_mb"] for c in cycles], ",.0f")
        lines.append(f"| {label} | {rss.show(rss.median)} | {rss.spread} |")
    slowest = ", ".join(
        f"`{uid.split('.')[-1]}` {seconds:.1f}" for uid, seconds in last["full_build"]["slowest"]
    )
    daily = ", ".join(
        f"`{uid.split('.')[-1]}` {seconds:.1f}" for uid, seconds in last["daily_build"]["slowest"]
    )
    lines += [
        "",
        f"Slowest dbt nodes of the last run (s): full build {slowest}; after 1% new events "
        f"{daily}. The first daily run after the history's load took "
        f"{last['first_daily_build']['seconds']:.1f} s (its rollup still re-reads that load "
        "through the look-back); the second is the one measured.",
        "",
        "Rows: " + ", ".join(f"`{name}` {n:,}" for name, n in sorted(rows.items())) + ".",
        "",
    ]
    return heading, "\n".join(lines)


def compare_section(
    data: Dataset,
    by_revision: dict[str, list[Cycle]],
    *,
    rate_limit: int,
    command: str,
) -> tuple[str, str]:
    """(heading, section) of two revisions measured side by side on the same data."""
    (first, a), (second, b) = by_revision.items()
    heading = f"## Compare {first} and {second} at {data.contacts:,} contacts"
    lines = [
        heading,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine_description()}, the two "
        f"revisions' runs interleaved on the same data ({len(a)} runs each; medians). "
        f"Command: `{command}`.",
        "",
        f"| figure | {first} | {second} | {second} / {first} |",
        "|---|---:|---:|---:|",
    ]
    for left, right in zip(figures(a, rate_limit), figures(b, rate_limit), strict=True):
        change = f"{right.median / left.median:.2f}" if left.median else ""
        lines.append(
            f"| {left.name} | {left.show(left.median)} | {right.show(right.median)} | {change} |"
        )
    lines.append("")
    return heading, "\n".join(lines)


def replace_section(out: Path, heading: str, section: str) -> None:
    """Put ``section`` (starting with ``heading``) in place of the old one, or at the end."""
    text = out.read_text() if out.exists() else "# Benchmarks\n\n"
    if heading + "\n" in text:
        before, _, after = text.partition(heading + "\n")
        rest = after.split("\n## ", 1)
        text = before + section + ("\n## " + rest[1] if len(rest) > 1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    out.write_text(text)
