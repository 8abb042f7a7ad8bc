"""Facts about HubSpot's contact object that the client, the extractor and the sandbox share."""

from __future__ import annotations

# Default internal values of the lifecyclestage property, in funnel order (wire contract §7).
LIFECYCLE_STAGES: tuple[str, ...] = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
