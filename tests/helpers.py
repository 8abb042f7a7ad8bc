"""Small helpers the integration tests share (seeding the sandbox, counting its writes)."""

from __future__ import annotations

from lead_scoring.sandbox import Sandbox
from lead_scoring.sandbox.admin import SandboxAdmin, write_requests


def seed_contacts(sandbox: Sandbox, count: int) -> None:
    """``count`` contacts lead0@example.com, lead1@..., with ids 1..count in a fresh portal."""
    contacts = [
        {
            "properties": {
                "email": f"lead{i}@example.com",
                "firstname": f"Lead{i}",
                "jobtitle": "VP Sales",
            },
            "createdAt": "2026-01-01T00:00:00.000Z",
        }
        for i in range(count)
    ]
    with SandboxAdmin(sandbox.url, sandbox.token) as admin:
        admin.seed_contacts(contacts)


def crm_writes(sandbox: Sandbox) -> tuple[int, int]:
    """(batch-update calls, contacts written) the sandbox has accepted so far."""
    with SandboxAdmin(sandbox.url, sandbox.token) as admin:
        return write_requests(admin.stats())
