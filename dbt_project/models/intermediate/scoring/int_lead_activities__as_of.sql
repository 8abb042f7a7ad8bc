-- A table, not a view: several models (and tests) read it; computed once per run.
{{ config(materialized='table') }}

-- The lead activity rollup cut at the as-of date: only days on or before it, only activity
-- already tied to the lead by then, and only leads that exist then (activity can belong to a
-- contact archived or not yet created at the as-of date). Every behavioural, bonus and decay
-- rule reads this, so no rule can see the future or score a contact that is not a lead.

with

daily as (

    select * from {{ ref('int_lead_activities__daily') }}

),

leads as (

    select * from {{ ref('int_leads__resolved_as_of') }}

),

final as (

    select
        daily.rollup_id,
        daily.lead_id,
        daily.activity_date,
        daily.known_date,
        daily.activity_kind_id,
        daily.channel,
        daily.activity_type,
        daily.funnel_stage,
        daily.page_path,
        daily.page_category,
        daily.product_line,
        daily.is_engagement,
        daily.activity_count,
        daily.sample_activity_id,
        daily.first_occurred_at,
        daily.last_occurred_at,
        {{ as_of_date() }} - daily.activity_date as age_days
    from daily
    inner join leads
        on daily.lead_id = leads.lead_id
    where
        daily.activity_date <= {{ as_of_date() }}
        and daily.known_date <= {{ as_of_date() }}

)

select * from final
