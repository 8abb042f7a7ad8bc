-- A table, not a view: several models (and tests) read it; computed once per run.
{{
    config(
        materialized='table',
        indexes=[{'columns': ['identity_type', 'identity_value'], 'unique': true}],
    )
}}

-- Which lead each identity belongs to, and since when. An identity is an email address, a
-- Segment userId or a Segment anonymousId. Emails come from the CRM contacts; an `identify`
-- call binds its anonymousId and userId to traits.email, and that email finds the contact.
-- When one identity was identified with several emails, the latest identify wins. `bound_at`
-- is when the binding became known: an anonymous visit only counts for a lead from the moment
-- the visitor identified, which keeps point-in-time scores honest.

with

contacts as (

    select * from {{ ref('stg_hubspot__contacts') }}

),

identify_calls as (

    select * from {{ ref('stg_segment__identifies') }}

),

email_holders as (

    select
        contacts.email,
        contacts.contact_id,
        least(min(contacts.created_at), min(contacts.valid_from)) as held_since,
        max(contacts.valid_from) as last_seen_at
    from contacts
    where contacts.email is not null
    group by contacts.email, contacts.contact_id

),

-- One lead per email: the contact that held it most recently (HubSpot keeps emails unique,
-- but a deleted and re-created contact can leave two holders behind).
lead_emails as (

    select distinct on (email_holders.email)
        email_holders.email,
        email_holders.contact_id as lead_id,
        email_holders.held_since
    from email_holders
    order by
        email_holders.email asc,
        email_holders.last_seen_at desc,
        email_holders.contact_id asc

),

identifies as (

    select
        identify_calls.anonymous_id,
        identify_calls.user_id,
        identify_calls.trait_email,
        identify_calls.occurred_at
    from identify_calls
    where identify_calls.trait_email is not null

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

-- Each identity with each email it was identified with: when first (the binding's start) and
-- when last (which email is the latest).
identity_bindings as (

    select
        identity_emails.identity_type,
        identity_emails.identity_value,
        identity_emails.trait_email,
        min(identity_emails.occurred_at) as identified_at,
        max(identity_emails.occurred_at) as last_identified_at
    from identity_emails
    group by
        identity_emails.identity_type,
        identity_emails.identity_value,
        identity_emails.trait_email

),

-- The latest email of each identity, bound since that email's first identify. (One pass: a
-- join of the identities back onto their bindings misled the planner into a nested loop
-- that grew with identities x contacts, 14 s at 10k contacts; BENCHMARKS.md.)
latest_bindings as (

    select distinct on (identity_bindings.identity_type, identity_bindings.identity_value)
        identity_bindings.identity_type,
        identity_bindings.identity_value,
        identity_bindings.trait_email,
        identity_bindings.identified_at
    from identity_bindings
    order by
        identity_bindings.identity_type asc,
        identity_bindings.identity_value asc,
        identity_bindings.last_identified_at desc,
        identity_bindings.trait_email asc

),

web_identities as (

    select
        latest_bindings.identity_type,
        latest_bindings.identity_value,
        lead_emails.lead_id,
        latest_bindings.identified_at as bound_at
    from latest_bindings
    inner join lead_emails
        on latest_bindings.trait_email = lead_emails.email

),

final as (

    select
        'email' as identity_type,
        lead_emails.email as identity_value,
        lead_emails.lead_id,
        lead_emails.held_since as bound_at
    from lead_emails

    union all

    select
        web_identities.identity_type,
        web_identities.identity_value,
        web_identities.lead_id,
        web_identities.bound_at
    from web_identities

)

select * from final
