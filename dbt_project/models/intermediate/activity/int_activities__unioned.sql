-- Every activity the sources hold, one row each, before anyone knows whose it is: web pages
-- and tracked actions keyed by their Segment ids, marketing email events by recipient.
-- Machine-generated email opens (HubSpot's filteredEvent) and email events that say nothing
-- about the lead (sent, processed, deferred) are left out. Nothing here depends on the rules
-- or on identity stitching, so the daily rollup built from it never goes stale when those
-- change.

with

web_events as (

    select * from {{ ref('stg_segment__web_events') }}

),

email_events as (

    select * from {{ ref('stg_hubspot__email_events') }}

),

web_activities as (

    select
        'web:' || web_events.message_id as activity_id,
        'web' as source_system,
        web_events.user_id,
        web_events.anonymous_id,
        cast(null as text) as email,
        case
            when web_events.event_type = 'page' then 'page_view'
            else {{ to_snake_case('web_events.event_name') }}
        end as activity_type,
        web_events.page_path,
        web_events.occurred_at,
        web_events.loaded_at
    from web_events
    where web_events.event_type in ('page', 'track')

),

email_activities as (

    select
        'email:' || email_events.event_id as activity_id,
        'email' as source_system,
        cast(null as text) as user_id,
        cast(null as text) as anonymous_id,
        email_events.recipient_email as email,
        case
            when email_events.event_type = 'delivered' then 'email_delivered'
            when email_events.event_type = 'open' then 'email_open'
            when email_events.event_type = 'click' then 'email_click'
            when
                email_events.event_type = 'bounce'
                and email_events.bounce_category = 'HARD_BOUNCE'
                then 'email_hard_bounce'
            when email_events.event_type = 'bounce' then 'email_soft_bounce'
            when email_events.event_type = 'spamreport' then 'email_spam_report'
            when
                email_events.event_type = 'statuschange'
                and email_events.portal_subscription_status = 'UNSUBSCRIBED'
                then 'email_unsubscribe'
        end as activity_type,
        cast(null as text) as page_path,
        email_events.occurred_at,
        email_events.loaded_at
    from email_events
    where
        not email_events.is_filtered_event
        and email_events.recipient_email is not null

),

final as (

    select
        web_activities.activity_id,
        web_activities.source_system,
        web_activities.user_id,
        web_activities.anonymous_id,
        web_activities.email,
        web_activities.activity_type,
        web_activities.page_path,
        cast(web_activities.occurred_at at time zone 'utc' as date) as activity_date,
        web_activities.occurred_at,
        web_activities.loaded_at
    from web_activities
    where web_activities.activity_type is not null

    union all

    select
        email_activities.activity_id,
        email_activities.source_system,
        email_activities.user_id,
        email_activities.anonymous_id,
        email_activities.email,
        email_activities.activity_type,
        email_activities.page_path,
        cast(email_activities.occurred_at at time zone 'utc' as date) as activity_date,
        email_activities.occurred_at,
        email_activities.loaded_at
    from email_activities
    where email_activities.activity_type is not null

)

select * from final
