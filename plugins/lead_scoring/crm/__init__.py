"""The CRM client: HubSpot CRM v3 (contacts, properties, batch writes, email events)."""

from lead_scoring.crm.client import BatchResult, HubSpotClient, HubSpotError

__all__ = ["BatchResult", "HubSpotClient", "HubSpotError"]
