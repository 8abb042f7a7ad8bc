"""Write a synthetic dataset into a running CRM sandbox and a folder of Segment JSONL files.

The dataset folder holds ``events/`` with one file per UTC day (``YYYY-MM-DD.jsonl``), as an
analytics export would, ``manifest.json`` (what was generated) and ``truth.csv`` (each contact's
hidden persona and propensity, for judging scoring models later; the pipeline never reads it).
The folder is written beside the old one and swapped in whole, and the portal is seeded by email,
so writing the same dataset twice leaves both exactly as they were.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from lead_scoring.sandbox.admin import SandboxAdmin
from lead_scoring.synth.generator import GENERATOR_VERSION, SynthConfig, generate

log = logging.getLogger(__name__)

CONTACT_CHUNK = 500
EMAIL_CHUNK = 5000


@dataclass
class SynthSummary:
    contacts: int
    contacts_created: int
    contacts_updated: int
    contacts_unchanged: int
    email_events: int
    email_events_inserted: int
    web_events: int
    files: int
    events_dir: str
    dirty: dict[str, int]


Progress = Callable[[int, int], None]


def write_dataset(
    config: SynthConfig,
    *,
    crm_url: str,
    token: str,
    out_dir: Path,
    progress: Progress | None = None,
) -> SynthSummary:
    """Generate ``config.contacts`` contacts into the portal at ``crm_url`` and ``out_dir``."""
    out_dir = out_dir.resolve()
    staging = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "events").mkdir(parents=True)

    handles: dict[str, IO[str]] = {}
    contacts: list[dict[str, Any]] = []
    email_batch: list[dict[str, Any]] = []
    totals = {"created": 0, "updated": 0, "unchanged": 0}
    email_total = email_inserted = web_total = 0

    with (
        SandboxAdmin(crm_url, token) as admin,
        (staging / "truth.csv").open("w", newline="") as truth_file,
    ):
        truth = csv.writer(truth_file)
        truth.writerow(["email", "persona", "propensity", "dirty"])
        dirty: Counter[str] = Counter()

        def write_line(day: str, text: str) -> None:
            handle = handles.get(day)
            if handle is None:
                handle = handles[day] = (staging / "events" / f"{day}.jsonl").open(
                    "w", encoding="utf-8"
                )
            handle.write(text + "\n")

        def flush_contacts() -> None:
            for key, value in admin.seed_contacts(contacts).items():
                totals[key] += value
            contacts.clear()

        def flush_email() -> None:
            nonlocal email_inserted
            email_inserted += admin.seed_email_events(email_batch)
            email_batch.clear()

        try:
            for bundle in generate(config):
                contacts.append(bundle.contact)
                contacts.extend(bundle.extra_contacts)
                truth.writerow(
                    [
                        bundle.contact["properties"]["email"],
                        bundle.persona,
                        bundle.propensity,
                        bundle.dirty or "",
                    ]
                )
                if bundle.dirty:
                    dirty[bundle.dirty] += 1
                email_batch.extend(bundle.email_events)
                email_total += len(bundle.email_events)
                for event in bundle.web_events:
                    write_line(
                        event["timestamp"][:10],
                        json.dumps(event, ensure_ascii=False, separators=(",", ":")),
                    )
                for day, text in bundle.raw_lines:
                    write_line(day, text)
                web_total += len(bundle.web_events) + len(bundle.raw_lines)
                if len(contacts) >= CONTACT_CHUNK:
                    flush_contacts()
                    if progress:
                        progress(bundle.index + 1, config.contacts)
                if len(email_batch) >= EMAIL_CHUNK:
                    flush_email()
            if contacts:
                flush_contacts()
            if email_batch:
                flush_email()
            if progress:
                progress(config.contacts, config.contacts)
        finally:
            for handle in handles.values():
                handle.close()

    summary = SynthSummary(
        contacts=config.contacts,
        contacts_created=totals["created"],
        contacts_updated=totals["updated"],
        contacts_unchanged=totals["unchanged"],
        email_events=email_total,
        email_events_inserted=email_inserted,
        web_events=web_total,
        files=len(handles),
        events_dir=str(out_dir / "events"),
        dirty=dict(sorted(dirty.items())),
    )
    manifest = {
        "config": {**asdict(config), "end": config.end.isoformat()},
        "generator_version": GENERATOR_VERSION,
        "summary": asdict(summary),
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    backup = out_dir.with_name(out_dir.name + ".old")
    shutil.rmtree(backup, ignore_errors=True)
    if out_dir.exists():
        out_dir.rename(backup)
    staging.rename(out_dir)
    shutil.rmtree(backup, ignore_errors=True)
    log.info("synthetic dataset written: %s", summary)
    return summary
