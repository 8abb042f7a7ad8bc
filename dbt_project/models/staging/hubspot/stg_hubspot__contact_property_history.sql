with

source as (

    select * from {{ source('hubspot', 'contact_property_history') }}

),

renamed as (

    select

        ----------  ids
        md5(
            concat_ws('|', contact_id, property, changed_at, value)
        ) as property_change_id,
        contact_id,

        ----------  text
        property as property_name,
        nullif(value, '') as property_value,
        source_type as change_source,

        ----------  timestamps
        changed_at,

        ----------  lineage
        batch_id,
        loaded_at

    from source

)

select * from renamed
