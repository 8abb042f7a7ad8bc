-- The daily rollup tied to leads and classified: one row per lead, day, activity type and
-- page (several identities of one lead stay separate rows). `known_date` is the day the
-- activities could first be tied to the lead; point-in-time scoring counts a row only when
-- both its activity date and its known date are on or before the as-of date.

with

rollups as (

    select * from {{ ref('int_activities__rolled_up_daily') }}

),

activity_kinds as (

    select * from {{ ref('int_activity_kinds__categorized') }}

),

-- Each row's lead and when it was tied to it (by email, then userId, then anonymousId).
stitched as (

    {{ stitched_to_leads('rollups', ref('int_lead_identities__stitched')) }}

),

final as (

    select
        stitched.rollup_id,
        stitched.actor_id,
        stitched.lead_id,
        stitched.activity_date,
        greatest(
            stitched.activity_date,
            cast(stitched.bound_at at time zone 'utc' as date)
        ) as known_date,
        activity_kinds.activity_kind_id,
        activity_kinds.channel,
        stitched.activity_type,
        activity_kinds.funnel_stage,
        stitched.page_path,
        activity_kinds.page_category,
        activity_kinds.product_line,
        activity_kinds.is_engagement,
        stitched.activity_count,
        stitched.sample_activity_id,
        stitched.first_occurred_at,
        stitched.last_occurred_at,
        stitched.last_loaded_at
    from stitched
    inner join activity_kinds
        on stitched.activity_kind_id = activity_kinds.activity_kind_id

)

select * from final
