-- Each lead's attributes as they were known at the as-of date: the latest contact version
-- whose validity started before the cutoff. Archived (deleted) contacts are not leads.

with

contacts as (

    select * from {{ ref('stg_hubspot__contacts') }}

),

known_versions as (

    select contacts.*
    from contacts
    where contacts.valid_from < {{ as_of_cutoff() }}

),

latest_versions as (

    select distinct on (known_versions.contact_id) known_versions.*
    from known_versions
    order by known_versions.contact_id asc, known_versions.valid_from desc

),

final as (

    select
        latest_versions.contact_id as lead_id,
        latest_versions.contact_version_id,
        latest_versions.email,
        latest_versions.first_name,
        latest_versions.last_name,
        latest_versions.company_name,
        latest_versions.job_title,
        latest_versions.industry,
        latest_versions.company_size,
        latest_versions.country,
        latest_versions.original_source,
        latest_versions.created_at,
        latest_versions.valid_from
    from latest_versions
    where not latest_versions.is_archived

)

select * from final
