-- A table, not a view: several models (and tests) read it; computed once per run.
{{ config(materialized='table') }}

-- Each lead as it was known at the as-of date: the latest contact version whose validity
-- started before the cutoff. A contact created before the cutoff but first extracted later
-- has no such version; its earliest version stands in and `has_attributes_as_of` says so
-- (backtests can leave those leads out). Archived (deleted) contacts are not leads.
-- Lifecycle dates later than the cutoff are not known yet and read as null. The lifecycle
-- stage is the one the CRM's property history had at the cutoff, when there is history.

with

contacts as (

    select * from {{ ref('stg_hubspot__contacts') }}

),

property_history as (

    select * from {{ ref('stg_hubspot__contact_property_history') }}

),

lifecycle_stages_as_of as (

    select distinct on (property_history.contact_id)
        property_history.contact_id,
        property_history.property_value as lifecycle_stage
    from property_history
    where
        property_history.property_name = 'lifecyclestage'
        and property_history.changed_at < {{ as_of_cutoff() }}
    order by
        property_history.contact_id asc,
        property_history.changed_at desc

),

ranked_versions as (

    select
        contacts.*,
        contacts.valid_from < {{ as_of_cutoff() }} as is_known_by_cutoff,
        row_number() over (
            partition by contacts.contact_id
            order by
                (contacts.valid_from < {{ as_of_cutoff() }}) desc,
                case
                    when contacts.valid_from < {{ as_of_cutoff() }}
                        then contacts.valid_from
                end desc nulls last,
                contacts.valid_from asc
        ) as version_rank
    from contacts

),

versions_as_of as (

    select ranked_versions.*
    from ranked_versions
    where
        ranked_versions.version_rank = 1
        and coalesce(ranked_versions.created_at, ranked_versions.valid_from)
        < {{ as_of_cutoff() }}

),

final as (

    select
        versions_as_of.contact_id as lead_id,
        versions_as_of.contact_version_id,
        versions_as_of.email,
        split_part(versions_as_of.email, '@', 2) as email_domain,
        versions_as_of.first_name,
        versions_as_of.last_name,
        versions_as_of.company_name,
        versions_as_of.job_title,
        versions_as_of.industry,
        versions_as_of.company_size,
        -- "1000+", "50-100" and "250" read as their lower bound: 1000, 50, 250
        cast(
            substring(versions_as_of.company_size from '^\s*([0-9]+)') as integer
        ) as company_employees,
        versions_as_of.country,
        versions_as_of.original_source,
        versions_as_of.properties,
        case
            when lifecycle_stages_as_of.contact_id is not null
                then lifecycle_stages_as_of.lifecycle_stage
            else versions_as_of.lifecycle_stage
        end as lifecycle_stage,
        versions_as_of.created_at,
        {% for stage in ['lead', 'mql', 'sql', 'opportunity', 'customer'] %}
            case
                when versions_as_of.became_{{ stage }}_at < {{ as_of_cutoff() }}
                    then versions_as_of.became_{{ stage }}_at
            end as became_{{ stage }}_at,
        {% endfor %}
        versions_as_of.is_known_by_cutoff as has_attributes_as_of,
        versions_as_of.valid_from
    from versions_as_of
    left join lifecycle_stages_as_of
        on versions_as_of.contact_id = lifecycle_stages_as_of.contact_id
    where not versions_as_of.is_archived

)

select * from final
