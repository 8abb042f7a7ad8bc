"""The warehouse schemas the job writes, by name (no imports: the DAG file reads these)."""

RAW_CRM = "raw_crm"
RAW_ANALYTICS = "raw_analytics"
OPS = "lead_scoring_ops"
MARTS = "lead_scoring_marts"
RULES = "lead_scoring_rules"  # the dbt seeds
