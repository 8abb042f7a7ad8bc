with

source as (

    select * from {{ source('hubspot', 'contacts') }}

),

renamed as (

    select

        ----------  ids
        contact_id
        || '@'
        || to_char(
            updated_at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'
        ) as contact_version_id,
        contact_id,

        ----------  text
        lower(nullif(trim(properties ->> 'email'), '')) as email,
        nullif(trim(properties ->> 'firstname'), '') as first_name,
        nullif(trim(properties ->> 'lastname'), '') as last_name,
        nullif(trim(properties ->> 'company'), '') as company_name,
        nullif(trim(properties ->> 'jobtitle'), '') as job_title,
        nullif(trim(properties ->> 'industry'), '') as industry,
        nullif(trim(properties ->> 'numemployees'), '') as company_size,
        nullif(trim(properties ->> 'country'), '') as country,
        nullif(trim(properties ->> 'hs_analytics_source'), '') as original_source,
        nullif(trim(properties ->> 'lifecyclestage'), '') as lifecycle_stage,

        ----------  json
        -- every property of the version: rules read other ones as `prop:<name>`
        properties,

        ----------  booleans
        archived as is_archived,

        ----------  timestamps
        updated_at as valid_from,
        {{ safe_timestamptz("properties ->> 'createdate'") }} as created_at,
        {{ safe_timestamptz("properties ->> 'hs_lifecyclestage_lead_date'") }}
            as became_lead_at,
        {{ safe_timestamptz("properties ->> 'hs_lifecyclestage_marketingqualifiedlead_date'") }}
            as became_mql_at,
        {{ safe_timestamptz("properties ->> 'hs_lifecyclestage_salesqualifiedlead_date'") }}
            as became_sql_at,
        {{ safe_timestamptz("properties ->> 'hs_lifecyclestage_opportunity_date'") }}
            as became_opportunity_at,
        {{ safe_timestamptz("properties ->> 'hs_lifecyclestage_customer_date'") }}
            as became_customer_at,

        ----------  lineage
        batch_id,
        loaded_at

    from source

)

select * from renamed
