-- The lead activity of the last days before the as-of date, as long as the longest
-- engagement-bonus look-back: activity on or before the as-of date, tied to the lead by
-- then, of leads that exist then and that this build projects (int_leads__reprojected). The
-- bonuses count channels and weeks in it.

with

daily as (

    select * from {{ ref('int_lead_activities__daily') }}

),

bonus_rules as (

    select * from {{ ref('engagement_bonus_rules') }}

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
        daily.is_engagement,
        daily.activity_count,
        daily.last_loaded_at,
        {{ as_of_date() }} - daily.activity_date as age_days
    from daily
    where
        daily.activity_date <= {{ as_of_date() }}
        and daily.activity_date > {{ as_of_date() }} - (
            select coalesce(max(bonus_rules.window_days), 0) from bonus_rules
        )
        and daily.known_date <= {{ as_of_date() }}
        and {{ is_reprojected('daily.lead_id') }}

)

select * from final
