"""Extraction: HubSpot pages and Segment JSONL files into raw-table rows (or quarantine records)."""
