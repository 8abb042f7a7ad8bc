"""What each stage of ``lead_scoring`` produces, as Airflow assets.

A BI refresh or a downstream DAG can be scheduled on these (``schedule=[SCORE_MARTS]``) instead
of on time: an asset event is emitted only when the stage that produces it succeeds.

- the extract tasks produce the raw tables they load;
- the score gate produces the score marts: dbt writes them, but they count as produced only
  once the gate has passed them, so a dashboard never refreshes on scores the gate refused;
- the sync produces the CRM's score properties; ``publish`` the run summary.

URIs name the table in the warehouse *connection* (``lead-scoring://warehouse/<schema>.<table>``)
rather than a host: the DAG file may not read a connection when it is parsed, and the same DAG
runs against the embedded, compose and production warehouses.
"""

from __future__ import annotations

from airflow.sdk import Asset

from lead_scoring.schemas import MARTS, OPS, RAW_ANALYTICS, RAW_CRM

GROUP = "lead_scoring"


def _table(schema: str, table: str) -> Asset:
    return Asset(
        name=f"{schema}.{table}", uri=f"lead-scoring://warehouse/{schema}.{table}", group=GROUP
    )


RAW_CONTACTS = [_table(RAW_CRM, "contacts"), _table(RAW_CRM, "contact_property_history")]
RAW_EMAIL_EVENTS = [_table(RAW_CRM, "email_events")]
RAW_WEB_EVENTS = [_table(RAW_ANALYTICS, "web_events"), _table(RAW_ANALYTICS, "identifies")]
SCORE_MARTS = [
    _table(MARTS, table)
    for table in (
        "fct_lead_scores",
        "fct_lead_score_ledger",
        "dim_leads",
        "fct_lead_funnel",
        "lead_score_history",
        "fct_lead_score_summary",
    )
]
CRM_SCORES = [Asset(name="crm.lead_scores", uri="lead-scoring://crm/lead_scores", group=GROUP)]
RUN_SUMMARY = [_table(OPS, "pipeline_runs")]
