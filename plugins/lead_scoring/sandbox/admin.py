"""Client for the sandbox's own ``/_sandbox/`` routes: seeding a portal and reading its counters.

Real HubSpot has no such routes; only the synthetic-data writer, the demo and the tests use them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx


class SandboxAdmin:
    def __init__(self, base_url: str, token: str, *, timeout: float = 60.0) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SandboxAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._http.post(path, json=body)
        response.raise_for_status()
        return dict(response.json())

    def seed_contacts(self, contacts: Sequence[dict[str, Any]]) -> dict[str, int]:
        """Create or update contacts keyed on email; returns created/updated/unchanged counts."""
        return {
            k: int(v)
            for k, v in self._post("/_sandbox/contacts", {"contacts": list(contacts)}).items()
        }

    def seed_email_events(self, events: Sequence[dict[str, Any]]) -> int:
        return int(self._post("/_sandbox/email-events", {"events": list(events)})["inserted"])

    def stats(self) -> dict[str, Any]:
        response = self._http.get("/_sandbox/stats")
        response.raise_for_status()
        return dict(response.json())

    def ping(self) -> bool:
        """True when a sandbox answers with this token."""
        try:
            return self._http.get("/_sandbox/stats", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False


def write_requests(stats: dict[str, Any]) -> tuple[int, int]:
    """(calls, records) of successful batch writes in a stats snapshot."""
    calls = records = 0
    for row in stats.get("requests", []):
        if row["route"] == "contacts.batch_update" and row["status"] in (200, 207):
            calls += int(row["calls"])
            records += int(row["records"] or 0)
    return calls, records
