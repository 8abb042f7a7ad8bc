-- One row per lead known at the as-of date: who they are (attributes as of that date), their
-- segment and product interest, how they are identified on the web, their engagement, and
-- the lifecycle dates the CRM recorded (labels for backtests and the funnel, never
-- features).

with

leads as (

    select * from {{ ref('int_leads__resolved_as_of') }}

),

segments as (

    select * from {{ ref('int_leads__segmented') }}

),

identities as (

    select * from {{ ref('int_lead_identities__stitched') }}

),

activity_kinds as (

    select * from {{ ref('int_lead_activity_kinds__as_of') }}

),

identity_counts as (

    select
        identities.lead_id,
        count(*) filter (where identities.identity_type = 'anonymous_id')
            as anonymous_id_count,
        count(*) filter (where identities.identity_type = 'user_id') as user_id_count
    from identities
    group by identities.lead_id

),

engagement as (

    select
        activity_kinds.lead_id,
        min(activity_kinds.first_activity_date) filter (where activity_kinds.is_engagement)
            as first_engaged_on,
        max(activity_kinds.last_activity_date) filter (where activity_kinds.is_engagement)
            as last_engaged_on,
        sum(activity_kinds.activity_count) filter (where activity_kinds.is_engagement)
            as engagement_count
    from activity_kinds
    group by activity_kinds.lead_id

),

product_line_counts as (

    select
        activity_kinds.lead_id,
        activity_kinds.product_line,
        sum(activity_kinds.activity_count) as activity_count
    from activity_kinds
    where activity_kinds.product_line is not null
    group by activity_kinds.lead_id, activity_kinds.product_line

),

product_interest as (

    select distinct on (product_line_counts.lead_id)
        product_line_counts.lead_id,
        product_line_counts.product_line
    from product_line_counts
    order by
        product_line_counts.lead_id asc,
        product_line_counts.activity_count desc,
        product_line_counts.product_line asc

),

final as (

    select
        cast(leads.lead_id as text) as lead_id,
        {{ as_of_date() }} as as_of_date,
        cast(leads.email as text) as email,
        cast(leads.email_domain as text) as email_domain,
        cast(leads.first_name as text) as first_name,
        cast(leads.last_name as text) as last_name,
        cast(leads.company_name as text) as company_name,
        cast(leads.job_title as text) as job_title,
        cast(leads.industry as text) as industry,
        cast(leads.company_size as text) as company_size,
        leads.company_employees,
        cast(leads.country as text) as country,
        cast(coalesce(leads.original_source, 'UNKNOWN') as text) as original_source,
        cast(segments.segment as text) as segment,
        cast(coalesce(product_interest.product_line, 'none') as text) as product_interest,
        cast(leads.lifecycle_stage as text) as lifecycle_stage,
        cast(coalesce(identity_counts.anonymous_id_count, 0) as integer)
            as anonymous_id_count,
        cast(coalesce(identity_counts.user_id_count, 0) as integer) as user_id_count,
        engagement.first_engaged_on,
        engagement.last_engaged_on,
        cast(coalesce(engagement.engagement_count, 0) as integer) as engagement_count,
        leads.created_at,
        leads.became_lead_at,
        leads.became_mql_at,
        leads.became_sql_at,
        leads.became_opportunity_at,
        leads.became_customer_at,
        leads.has_attributes_as_of
    from leads
    inner join segments
        on leads.lead_id = segments.lead_id
    left join identity_counts
        on leads.lead_id = identity_counts.lead_id
    left join engagement
        on leads.lead_id = engagement.lead_id
    left join product_interest
        on leads.lead_id = product_interest.lead_id

)

select * from final
