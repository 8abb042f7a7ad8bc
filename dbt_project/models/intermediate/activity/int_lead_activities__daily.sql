-- The daily rollup tied to leads and classified: one row per lead, day, activity type and
-- page (several identities of one lead stay separate rows). `known_date` is the day the
-- activities could first be tied to the lead; point-in-time scoring counts a row only when
-- both its activity date and its known date are on or before the as-of date.

with

rollups as (

    select * from {{ ref('int_activities__rolled_up_daily') }}

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
        rollups.*,
        coalesce(by_email.lead_id, by_user_id.lead_id, by_anonymous_id.lead_id) as lead_id,
        coalesce(by_email.bound_at, by_user_id.bound_at, by_anonymous_id.bound_at) as bound_at
    from rollups
    left join email_identities as by_email
        on rollups.email = by_email.identity_value
    left join user_id_identities as by_user_id
        on rollups.user_id = by_user_id.identity_value
    left join anonymous_id_identities as by_anonymous_id
        on rollups.anonymous_id = by_anonymous_id.identity_value

),

final as (

    select
        stitched.rollup_id,
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
        on
            stitched.activity_type = activity_kinds.activity_type
            and stitched.page_path is not distinct from activity_kinds.page_path
    where stitched.lead_id is not null

)

select * from final
