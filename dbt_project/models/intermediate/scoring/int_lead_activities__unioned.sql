-- The unified activity stream: one row per thing a lead did before the cutoff, from the web
-- (pages and tracked actions, stitched to the lead) and from marketing email. Email opens that
-- HubSpot flags as machine-generated are not activities. Web events of visitors never
-- identified stay anonymous and are not here.

with

web_events as (

    select * from {{ ref('stg_segment__web_events') }}

),

email_events as (

    select * from {{ ref('stg_hubspot__email_events') }}

),

identities as (

    select * from {{ ref('int_web_identities__stitched') }}

),

leads as (

    select * from {{ ref('int_leads__resolved_as_of') }}

),

web_activities as (

    select
        coalesce(by_user_id.lead_id, by_anonymous_id.lead_id) as lead_id,
        'web:' || web_events.message_id as activity_id,
        case
            when web_events.event_type = 'page' then 'page_view'
            else {{ to_snake_case('web_events.event_name') }}
        end as activity_type,
        web_events.page_path,
        web_events.occurred_at
    from web_events
    left join identities as by_user_id
        on
            by_user_id.identity_type = 'user_id'
            and web_events.user_id = by_user_id.identity_value
    left join identities as by_anonymous_id
        on
            by_anonymous_id.identity_type = 'anonymous_id'
            and web_events.anonymous_id = by_anonymous_id.identity_value
    where
        web_events.event_type in ('page', 'track')
        and web_events.occurred_at < {{ as_of_cutoff() }}

),

email_activities as (

    select
        leads.lead_id,
        'email:' || email_events.event_id as activity_id,
        case
            when email_events.event_type = 'open' then 'email_open'
            when email_events.event_type = 'click' then 'email_click'
            when email_events.event_type = 'bounce' then 'email_bounce'
            when email_events.event_type = 'spamreport' then 'email_spam_report'
            when
                email_events.event_type = 'statuschange'
                and email_events.portal_subscription_status = 'UNSUBSCRIBED'
                then 'email_unsubscribe'
        end as activity_type,
        cast(null as text) as page_path,
        email_events.occurred_at
    from email_events
    inner join leads
        on email_events.recipient_email = leads.email
    where
        not email_events.is_filtered_event
        and email_events.occurred_at < {{ as_of_cutoff() }}

),

final as (

    select
        web_activities.lead_id,
        web_activities.activity_id,
        case
            when web_activities.activity_type like 'social\_%' then 'social'
            else 'web'
        end as channel,
        web_activities.activity_type,
        web_activities.page_path,
        web_activities.occurred_at
    from web_activities
    where web_activities.lead_id is not null

    union all

    select
        email_activities.lead_id,
        email_activities.activity_id,
        'email' as channel,
        email_activities.activity_type,
        email_activities.page_path,
        email_activities.occurred_at
    from email_activities
    where email_activities.activity_type is not null

)

select * from final
