-- The lead activity rollup cut at the as-of date: only days on or before it, and only
-- activity already tied to the lead by then. Every behavioural, bonus and decay rule reads
-- this, so no rule can see the future.

with

daily as (

    select * from {{ ref('int_lead_activities__daily') }}

),

final as (

    select
        daily.*,
        {{ as_of_date() }} - daily.activity_date as age_days
    from daily
    where
        daily.activity_date <= {{ as_of_date() }}
        and daily.known_date <= {{ as_of_date() }}

)

select * from final
