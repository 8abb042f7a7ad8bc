-- The lead attributes rules can test, one row per lead and attribute, as of the as-of date.
-- Adding an attribute here makes it available to demographic rules and segment definitions.
-- Rules may also name any CRM property as `prop:<name>`; only the properties some rule or
-- segment names are read.

with

leads as (

    select * from {{ ref('int_leads__resolved_as_of') }}

),

demographic_rules as (

    select * from {{ ref('demographic_rules') }}

),

lead_segments as (

    select * from {{ ref('lead_segments') }}

),

named_properties as (

    select distinct demographic_rules.attribute
    from demographic_rules
    where demographic_rules.attribute like 'prop:%'

    union

    select distinct lead_segments.attribute
    from lead_segments
    where lead_segments.attribute like 'prop:%'

),

standard_attributes as (

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

),

property_attributes as (

    select
        leads.lead_id,
        named_properties.attribute,
        nullif(trim(leads.properties ->> substr(named_properties.attribute, 6)), '')
            as attribute_value
    from leads
    cross join named_properties

),

final as (

    select
        standard_attributes.lead_id,
        standard_attributes.attribute,
        standard_attributes.attribute_value
    from standard_attributes
    where standard_attributes.attribute_value is not null

    union all

    select
        property_attributes.lead_id,
        property_attributes.attribute,
        property_attributes.attribute_value
    from property_attributes
    where property_attributes.attribute_value is not null

)

select * from final
