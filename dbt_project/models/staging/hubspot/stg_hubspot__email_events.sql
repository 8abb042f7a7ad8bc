with

source as (

    select * from {{ source('hubspot', 'email_events') }}

),

renamed as (

    select

        ----------  ids
        event_id,
        raw ->> 'emailCampaignId' as email_campaign_id,

        ----------  text
        lower(event_type) as event_type,
        recipient as recipient_email,
        raw ->> 'category' as bounce_category,
        raw ->> 'url' as clicked_url,
        upper(raw ->> 'portalSubscriptionStatus') as portal_subscription_status,

        ----------  booleans
        coalesce(raw ->> 'filteredEvent' = 'true', false) as is_filtered_event,

        ----------  timestamps
        created_at as occurred_at,

        ----------  lineage
        batch_id,
        loaded_at

    from source

)

select * from renamed
