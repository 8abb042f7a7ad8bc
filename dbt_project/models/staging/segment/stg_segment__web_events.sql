with

source as (

    select * from {{ source('segment', 'web_events') }}

),

renamed as (

    select

        ----------  ids
        message_id,
        anonymous_id,
        user_id,

        ----------  text
        event_type,
        event_name,
        coalesce(
            raw -> 'context' -> 'page' ->> 'path', raw -> 'properties' ->> 'path'
        ) as page_path,
        coalesce(
            raw -> 'context' -> 'page' ->> 'url', raw -> 'properties' ->> 'url'
        ) as page_url,
        raw -> 'context' -> 'campaign' ->> 'source' as utm_source,

        ----------  timestamps
        event_timestamp as occurred_at,

        ----------  lineage
        batch_id,
        loaded_at

    from source

)

select * from renamed
