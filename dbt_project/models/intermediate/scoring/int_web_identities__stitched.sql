-- Which lead each Segment identity belongs to. An `identify` call binds its anonymousId and
-- userId to traits.email, and the email finds the CRM contact; when one identity was identified
-- with several emails, the latest identify before the cutoff wins.

with

web_events as (

    select * from {{ ref('stg_segment__web_events') }}

),

leads as (

    select * from {{ ref('int_leads__resolved_as_of') }}

),

identifies as (

    select
        web_events.anonymous_id,
        web_events.user_id,
        web_events.trait_email,
        web_events.occurred_at
    from web_events
    where
        web_events.event_type = 'identify'
        and web_events.trait_email is not null
        and web_events.occurred_at < {{ as_of_cutoff() }}

),

identity_emails as (

    select
        'anonymous_id' as identity_type,
        identifies.anonymous_id as identity_value,
        identifies.trait_email,
        identifies.occurred_at
    from identifies
    where identifies.anonymous_id is not null

    union all

    select
        'user_id' as identity_type,
        identifies.user_id as identity_value,
        identifies.trait_email,
        identifies.occurred_at
    from identifies
    where identifies.user_id is not null

),

latest_identity_emails as (

    select distinct on (identity_emails.identity_type, identity_emails.identity_value)
        identity_emails.identity_type,
        identity_emails.identity_value,
        identity_emails.trait_email
    from identity_emails
    order by
        identity_emails.identity_type asc,
        identity_emails.identity_value asc,
        identity_emails.occurred_at desc

),

final as (

    select
        latest_identity_emails.identity_type,
        latest_identity_emails.identity_value,
        leads.lead_id
    from latest_identity_emails
    inner join leads
        on latest_identity_emails.trait_email = leads.email

)

select * from final
