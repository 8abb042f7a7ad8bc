"""Adapters that write the import contract's files from datasets nobody here wrote.

Each maps its source honestly onto demographic, behavioural, negative and recency signals, and
leaves out what would leak the label (said in each adapter's docstring and in the README). Each
comes with a ruleset of its own in ``dbt_project/rulesets/<name>/`` (the product's default
ruleset is about B2B software buyers; a bank's call list needs other rules) and writes
``backtest.json`` with the cadence and maturity window its timeline calls for.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any

from lead_scoring.synth.generator import SynthConfig, generate

CONTACT_COLUMNS = (
    "lead_id",
    "created_at",
    "email",
    "job_title",
    "industry",
    "company_size",
    "country",
    "original_source",
)
ACTIVITY_COLUMNS = ("lead_id", "occurred_at", "activity_type", "page_path")
OUTCOME_COLUMNS = ("lead_id", "stage", "reached_at")


@dataclass
class AdapterSummary:
    name: str
    folder: Path
    contacts: int
    activities: int
    outcomes: Counter[str]
    left_out: tuple[str, ...]

    def lines(self) -> list[str]:
        return [
            f"{self.name}: {self.contacts} contacts, {self.activities} activities, outcomes "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())),
            f"  written to {self.folder}",
            "  left out (would leak the label or is not about the lead): "
            + (", ".join(self.left_out) or "nothing"),
        ]


def shared_data_dir() -> Path:
    """Where the real datasets are: ``$LEAD_SCORING_SHARED_DATA``, else ``../shared/data``."""
    from lead_scoring.config import repo_root

    return Path(os.environ.get("LEAD_SCORING_SHARED_DATA", repo_root().parent / "shared" / "data"))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Writer:
    """The three contract files of one dataset folder."""

    def __init__(self, folder: Path, custom: Iterable[str] = ()) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._handles: list[IO[str]] = []
        self.contacts = self._open("contacts.csv", (*CONTACT_COLUMNS, *custom))
        self.activities = self._open("activities.csv", ACTIVITY_COLUMNS)
        self.outcomes = self._open("outcomes.csv", OUTCOME_COLUMNS)
        self.counts: Counter[str] = Counter()
        self.outcome_counts: Counter[str] = Counter()

    def _open(self, name: str, columns: tuple[str, ...]) -> csv.DictWriter[str]:
        handle = (self.folder / name).open("w", newline="", encoding="utf-8")
        self._handles.append(handle)
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="raise")
        writer.writeheader()
        return writer

    def contact(self, row: dict[str, Any]) -> None:
        self.contacts.writerow(row)
        self.counts["contacts"] += 1

    def activity(self, lead_id: str, at: datetime, kind: str, page_path: str = "") -> None:
        self.activities.writerow(
            {
                "lead_id": lead_id,
                "occurred_at": _iso(at),
                "activity_type": kind,
                "page_path": page_path,
            }
        )
        self.counts["activities"] += 1

    def outcome(self, lead_id: str, stage: str, at: datetime) -> None:
        self.outcomes.writerow({"lead_id": lead_id, "stage": stage, "reached_at": _iso(at)})
        self.outcome_counts[stage] += 1

    def close(self, defaults: dict[str, Any]) -> None:
        for handle in self._handles:
            handle.close()
        (self.folder / "backtest.json").write_text(json.dumps(defaults, indent=2) + "\n")


# ---------------------------------------------------------------------- UCI Bank Marketing
UCI_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
UCI_LEFT_OUT = (
    "duration (the last call's length: only known once the call has ended with the outcome)",
    "campaign (calls of this campaign, counted up to the deciding call, after the cutoff)",
    "emp.var.rate, cons.price.idx, cons.conf.idx, euribor3m, nr.employed (the economy of the "
    "month, not the lead)",
)


def write_uci_bank_marketing(source: Path, folder: Path) -> AdapterSummary:
    """UCI Bank Marketing (``bank-additional-full.csv``, semicolon-separated) as a call list.

    The file has no years and no days: rows are in date order from May 2008 to November 2010,
    so the year goes up whenever the month goes back, and a month's rows are spread over its
    days in file order. Each row is a client of that month's campaign:

    - created on the month's first day (the call list), so a cutoff on the 1st scores the
      month's list with what was known before the campaign's calls;
    - demographic: job (``job_title``) and, as ``prop:`` attributes, age, marital status,
      education, housing and personal loans, the contact channel;
    - negative: a credit in default (``prop:credit_default``);
    - behavioural and recency: the previous campaign's calls (``previous``), the last one
      ``pdays`` days before the list as a ``phone_call``, and its outcome
      (``prop:previous_outcome``); decay rules read their age;
    - outcome: ``y`` = yes is ``customer`` on the deciding call's day, no is ``lost`` then.
    """
    writer = _Writer(
        folder,
        custom=(
            "age",
            "marital",
            "education",
            "credit_default",
            "housing_loan",
            "personal_loan",
            "contact_channel",
            "previous_outcome",
        ),
    )
    with source.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    if not rows or "y" not in rows[0] or "month" not in rows[0]:
        raise ValueError(f"{source} is not UCI's bank-additional-full.csv (no y / month columns)")
    year, last_month = 2008, 0
    months: list[tuple[int, int]] = []
    for row in rows:
        month = UCI_MONTHS[row["month"]]
        if month < last_month:
            year += 1
        last_month = month
        months.append((year, month))
    per_month = Counter(months)
    position: Counter[tuple[int, int]] = Counter()
    for index, (row, (year, month)) in enumerate(zip(rows, months, strict=True)):
        lead_id = f"uci-{index + 1}"
        first = datetime(year, month, 1, tzinfo=UTC)
        next_month = (first + timedelta(days=32)).replace(day=1)
        days = (next_month - first).days
        # spread over the 2nd .. last day, in file order
        offset = 1 + (position[(year, month)] * (days - 1)) // per_month[(year, month)]
        position[(year, month)] += 1
        decided = datetime.combine(first.date() + timedelta(days=offset), time(12), tzinfo=UTC)
        writer.contact(
            {
                "lead_id": lead_id,
                "created_at": _iso(first),
                "job_title": _known(row["job"]),
                "age": row["age"],
                "marital": _known(row["marital"]),
                "education": _known(row["education"]),
                "credit_default": row["default"],  # "unknown" says something here
                "housing_loan": _known(row["housing"]),
                "personal_loan": _known(row["loan"]),
                "contact_channel": row["contact"],
                "previous_outcome": row["poutcome"],
            }
        )
        previous, pdays = int(row["previous"]), int(row["pdays"])
        if previous:
            # pdays 999 = not reached in a previous campaign although counted: long ago
            last = first - timedelta(days=pdays if pdays != 999 else 180)
            for n in range(previous):
                writer.activity(lead_id, last - timedelta(days=7 * n), "phone_call")
        stage = "customer" if row["y"] == "yes" else "lost"
        writer.outcome(lead_id, stage, decided)
    writer.close(
        {
            "dataset": "uci_bank_marketing",
            "ruleset": "uci_bank_marketing",
            "outcome": "customer",
            "cadence": "monthly",
            "maturity_days": 31,
            "max_cutoffs": None,
        }
    )
    return AdapterSummary(
        "uci_bank_marketing",
        folder,
        writer.counts["contacts"],
        writer.counts["activities"],
        writer.outcome_counts,
        UCI_LEFT_OUT,
    )


def _known(value: str) -> str:
    return "" if value == "unknown" else value


# ---------------------------------------------------------------------- Olist marketing funnel
OLIST_LEFT_OUT = (
    "every column of olist_closed_deals_dataset.csv but won_date (business segment, lead type, "
    "behaviour profile, catalogue size, revenue...: recorded by the sales rep when the deal "
    "closed, only for won leads)",
)


def write_olist(source_dir: Path, folder: Path) -> AdapterSummary:
    """The Olist marketing funnel: 8,000 MQLs (first contact, landing page, origin) and the 842
    deals closed from them.

    - created on the first-contact date; the MQL's form on its landing page is a
      ``contact_form_submitted`` on ``/lp/<landing_page_id>`` that day (behavioural);
    - demographic: the acquisition channel (``original_source`` = origin; ``unknown`` and an
      empty origin are left empty, a negative rule can test for them as ``prop:origin_known``);
    - recency: the form submission ages, and decay rules read that age;
    - outcome: a closed deal is ``customer`` on its won date.
    """
    writer = _Writer(folder, custom=("origin_known",))
    won: dict[str, datetime] = {}
    with (source_dir / "olist_closed_deals_dataset.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            won[row["mql_id"]] = datetime.fromisoformat(row["won_date"]).replace(tzinfo=UTC)
    with (source_dir / "olist_marketing_qualified_leads_dataset.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            lead_id = row["mql_id"]
            created = datetime.combine(
                date.fromisoformat(row["first_contact_date"]), time(9), tzinfo=UTC
            )
            origin = (row["origin"] or "").strip()
            known = origin not in ("", "unknown")
            writer.contact(
                {
                    "lead_id": lead_id,
                    "created_at": _iso(created),
                    "original_source": origin if known else "",
                    "origin_known": "yes" if known else "no",
                }
            )
            writer.activity(
                lead_id, created, "contact_form_submitted", f"/lp/{row['landing_page_id']}"
            )
            writer.outcome(lead_id, "marketingqualifiedlead", created)
            if lead_id in won:
                writer.outcome(lead_id, "customer", won[lead_id])
    writer.close(
        {
            "dataset": "olist_marketing_funnel",
            "ruleset": "olist_marketing_funnel",
            "outcome": "customer",
            "cadence": "monthly",
            "maturity_days": 60,
            "max_lead_age_days": 120,
        }
    )
    return AdapterSummary(
        "olist_marketing_funnel",
        folder,
        writer.counts["contacts"],
        writer.counts["activities"],
        writer.outcome_counts,
        OLIST_LEFT_OUT,
    )


# ---------------------------------------------------------------------- synthetic
SYNTH_EMAIL_TYPES = {
    "DELIVERED": "email_delivered",
    "OPEN": "email_open",
    "CLICK": "email_click",
    "SPAMREPORT": "email_spam_report",
    "STATUSCHANGE": "email_unsubscribe",
}
SYNTH_STAGES = ("marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer")


def _snake(name: str) -> str:
    return "_".join(name.lower().split())


def write_synthetic(config: SynthConfig, folder: Path) -> AdapterSummary:
    """The synthetic generator's contacts, with ``truth.csv`` (each lead's hidden propensity).

    Web visits of visitors who never identified are left out (no CRM could attribute them);
    machine-filtered email opens too, as the pipeline does.
    """
    writer = _Writer(folder)
    with (folder / "truth.csv").open("w", newline="") as truth_handle:
        truth = csv.writer(truth_handle)
        truth.writerow(["lead_id", "persona", "propensity"])
        for bundle in generate(config):
            lead_id = f"synth-{bundle.index + 1}"
            props = bundle.contact["properties"]
            writer.contact(
                {
                    "lead_id": lead_id,
                    "created_at": bundle.contact["createdAt"],
                    "email": props["email"],
                    "job_title": props["jobtitle"],
                    "industry": props["industry"],
                    "company_size": props["numemployees"],
                    "country": props["country"],
                    "original_source": props["hs_analytics_source"],
                }
            )
            truth.writerow([lead_id, bundle.persona, bundle.propensity])
            if any(e["type"] == "identify" for e in bundle.web_events):
                for event in bundle.web_events:
                    at = datetime.fromisoformat(event["timestamp"])
                    if event["type"] == "page":
                        writer.activity(lead_id, at, "page_view", event["properties"]["path"])
                    elif event["type"] == "track":
                        path = (event.get("properties") or {}).get("path", "")
                        writer.activity(lead_id, at, _snake(event["event"]), path)
            for email in bundle.email_events:
                kind = SYNTH_EMAIL_TYPES.get(email["type"])
                if email["type"] == "BOUNCE":
                    hard = email.get("category") == "HARD_BOUNCE"
                    kind = "email_hard_bounce" if hard else "email_soft_bounce"
                if kind is None or email.get("filteredEvent"):
                    continue
                at = datetime.fromtimestamp(email["created"] / 1000, tz=UTC)
                writer.activity(lead_id, at, kind)
            for stage in SYNTH_STAGES:
                reached = props.get(f"hs_lifecyclestage_{stage}_date")
                if reached:
                    writer.outcome(lead_id, stage, datetime.fromisoformat(reached))
    writer.close(
        {
            "dataset": "synthetic",
            "outcome": "salesqualifiedlead",
            "cadence": "weekly",
            "maturity_days": 30,
        }
    )
    return AdapterSummary(
        "synthetic",
        folder,
        writer.counts["contacts"],
        writer.counts["activities"],
        writer.outcome_counts,
        (),
    )
