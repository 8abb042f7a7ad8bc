-- A table, not a view: several models (and tests) read it; computed once per run.
{{ config(materialized='table') }}

-- Each lead's market segment as of the as-of date: the first segment (by priority) whose
-- definition the lead's attributes match, else `other`. Thresholds can differ by segment.

with

leads as (

    select * from {{ ref('int_leads__resolved_as_of') }}

),

lead_attributes as (

    select * from {{ ref('int_lead_attributes__unpivoted') }}

),

lead_segments as (

    select * from {{ ref('lead_segments') }}

),

matches as (

    select distinct on (lead_attributes.lead_id)
        lead_attributes.lead_id,
        lead_segments.segment
    from lead_attributes
    inner join lead_segments
        on
            lead_attributes.attribute = lead_segments.attribute
            and coalesce(
                {{ rule_matches(
                    'lead_attributes.attribute_value',
                    'lead_segments.operator',
                    'lead_segments.rule_value'
                ) }},
                false
            )
    order by lead_attributes.lead_id asc, lead_segments.priority asc

),

final as (

    select
        leads.lead_id,
        coalesce(matches.segment, 'other') as segment
    from leads
    left join matches
        on leads.lead_id = matches.lead_id

)

select * from final
