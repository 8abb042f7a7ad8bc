-- The lead attributes rules can test, one row per lead and attribute, as of the as-of date.
-- Adding an attribute here makes it available to demographic rules and segment definitions.

with

leads as (

    select * from {{ ref('int_leads__resolved_as_of') }}

),

final as (

    select
        leads.lead_id,
        attributes.attribute,
        attributes.attribute_value
    from leads
    cross join
        lateral (
            values
            ('job_title', leads.job_title),
            ('industry', leads.industry),
            ('company_size', leads.company_size),
            ('company_employees', cast(leads.company_employees as text)),
            ('country', leads.country),
            ('email_domain', leads.email_domain),
            ('original_source', leads.original_source)
        ) as attributes (attribute, attribute_value)
    where attributes.attribute_value is not null

)

select * from final
