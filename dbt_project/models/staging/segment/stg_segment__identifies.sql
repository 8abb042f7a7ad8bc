with

source as (

    select * from {{ source('segment', 'identifies') }}

),

renamed as (

    select

        ----------  ids
        message_id,
        anonymous_id,
        user_id,

        ----------  text
        email as trait_email,
        nullif(trim(traits ->> 'company'), '') as trait_company,

        ----------  timestamps
        event_timestamp as occurred_at,

        ----------  lineage
        batch_id,
        loaded_at

    from source

)

select * from renamed
