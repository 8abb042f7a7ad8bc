"""Reverse-ETL: only changed scores go back to the CRM, in batches, with a ledger."""
