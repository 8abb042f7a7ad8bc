"""Synthetic data: a CRM portal and an analytics export that behave like real ones."""

from lead_scoring.synth.generator import PERSONAS, SynthConfig, generate, make_contact
from lead_scoring.synth.writer import SynthSummary, write_dataset

__all__ = ["PERSONAS", "SynthConfig", "SynthSummary", "generate", "make_contact", "write_dataset"]
