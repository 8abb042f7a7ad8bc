"""The CRM sandbox: a local server that follows the HubSpot CRM v3 wire contract.

Run it on its own with ``lead-scoring sandbox --port 8765``.
"""

from lead_scoring.sandbox.portal import Portal
from lead_scoring.sandbox.server import Faults, RateLimiter, Sandbox

__all__ = ["Faults", "Portal", "RateLimiter", "Sandbox"]
