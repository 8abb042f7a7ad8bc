-- The unified activity stream: one row per thing a lead did, on any channel, with its funnel
-- stage and page category. Web activity belongs to a lead through its userId, else its
-- anonymousId; email activity through the recipient address. `known_at` is when the activity
-- could first be tied to the lead (an anonymous visit is known once the visitor identifies).
-- Activity of visitors never identified is not here. Scoring reads the daily rollup
-- (int_lead_activities__daily); this stream is for drilling into single activities.

with

activities as (

    select * from {{ ref('int_activities__unioned') }}

),

activity_kinds as (

    select * from {{ ref('int_activity_kinds__categorized') }}

),

-- Each row's lead and when it was tied to it (by email, then userId, then anonymousId).
stitched as (

    {{ stitched_to_leads('activities', ref('int_lead_identities__stitched')) }}

),

final as (

    select
        stitched.activity_id,
        stitched.lead_id,
        activity_kinds.channel,
        stitched.activity_type,
        activity_kinds.funnel_stage,
        stitched.page_path,
        activity_kinds.page_category,
        activity_kinds.product_line,
        activity_kinds.is_engagement,
        stitched.occurred_at,
        greatest(stitched.occurred_at, stitched.bound_at) as known_at,
        stitched.loaded_at
    from stitched
    inner join activity_kinds
        on
            stitched.activity_type = activity_kinds.activity_type
            and stitched.page_path is not distinct from activity_kinds.page_path

)

select * from final
