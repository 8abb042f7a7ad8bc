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

-- One import per identity type: each is then read once and inlined, so the planner sees
-- the table's real sizes (a CTE read three times is materialized and estimated blind).
email_identities as (

    select * from {{ ref('int_lead_identities__stitched') }}
    where identity_type = 'email'

),

user_id_identities as (

    select * from {{ ref('int_lead_identities__stitched') }}
    where identity_type = 'user_id'

),

anonymous_id_identities as (

    select * from {{ ref('int_lead_identities__stitched') }}
    where identity_type = 'anonymous_id'

),

activity_kinds as (

    select * from {{ ref('int_activity_kinds__categorized') }}

),

stitched as (

    select
        activities.*,
        coalesce(by_email.lead_id, by_user_id.lead_id, by_anonymous_id.lead_id) as lead_id,
        coalesce(by_email.bound_at, by_user_id.bound_at, by_anonymous_id.bound_at) as bound_at
    from activities
    left join email_identities as by_email
        on activities.email = by_email.identity_value
    left join user_id_identities as by_user_id
        on activities.user_id = by_user_id.identity_value
    left join anonymous_id_identities as by_anonymous_id
        on activities.anonymous_id = by_anonymous_id.identity_value

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
    where stitched.lead_id is not null

)

select * from final
