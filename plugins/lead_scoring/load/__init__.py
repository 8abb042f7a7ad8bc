"""Bulk loading into the raw tables (COPY, one transaction per batch, quarantine for bad input)."""

from lead_scoring.load.batch import LoadResult, Rejected, load_batch
from lead_scoring.load.tables import CONTACTS, EMAIL_EVENTS, WEB_EVENTS

__all__ = ["CONTACTS", "EMAIL_EVENTS", "WEB_EVENTS", "LoadResult", "Rejected", "load_batch"]
