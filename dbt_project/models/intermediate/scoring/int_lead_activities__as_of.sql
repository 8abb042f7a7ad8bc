-- A table, not a view: several models (and tests) read it; computed once per run.
{{ config(materialized='table') }}

-- The lead activity rollup cut at the as-of date: only days on or before it, and only
-- activity already tied to the lead by then. Every behavioural, bonus and decay rule reads
-- this, so no rule can see the future.

with

daily as (

    select * from {{ ref('int_lead_activities__daily') }}

),

final as (

    select
        daily.rollup_id,
        daily.lead_id,
        daily.activity_date,
        daily.known_date,
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
    where
        daily.activity_date <= {{ as_of_date() }}
        and daily.known_date <= {{ as_of_date() }}

)

select * from final
