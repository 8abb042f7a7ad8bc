-- The lead funnel at the as-of date, per scoring model and cohort (segment, industry,
-- product interest, original source): how many leads each model calls MQL and SQL, how many
-- of those the CRM later saw reach SQL, opportunity and customer, the conversion rate from
-- each stage to the next, and the median days between CRM stages.

with

scores as (

    select * from {{ ref('fct_lead_scores') }}

),

leads as (

    select * from {{ ref('dim_leads') }}

),

cohort_leads as (

    select
        scores.scoring_model_id,
        leads.segment,
        coalesce(leads.industry, 'unknown') as industry,
        leads.product_interest,
        leads.original_source,
        scores.is_mql or scores.mql_date is not null as is_model_mql,
        scores.is_sql or scores.sql_date is not null as is_model_sql,
        leads.became_mql_at,
        leads.became_sql_at,
        leads.became_opportunity_at,
        leads.became_customer_at
    from scores
    inner join leads
        on scores.lead_id = leads.lead_id

),

cohorts as (

    select
        cohort_leads.scoring_model_id,
        cohort_leads.segment,
        cohort_leads.industry,
        cohort_leads.product_interest,
        cohort_leads.original_source,
        count(*) as lead_count,
        count(*) filter (where cohort_leads.is_model_mql) as model_mql_count,
        count(*) filter (where cohort_leads.is_model_sql) as model_sql_count,
        count(*) filter (
            where cohort_leads.is_model_mql and cohort_leads.became_sql_at is not null
        ) as model_mql_reached_sql_count,
        count(cohort_leads.became_mql_at) as crm_mql_count,
        count(cohort_leads.became_sql_at) as crm_sql_count,
        count(cohort_leads.became_opportunity_at) as opportunity_count,
        count(cohort_leads.became_customer_at) as customer_count,
        percentile_cont(0.5) within group (
            order by extract(
                epoch from cohort_leads.became_sql_at - cohort_leads.became_mql_at
            ) / 86400
        ) as median_days_mql_to_sql,
        percentile_cont(0.5) within group (
            order by extract(
                epoch from cohort_leads.became_opportunity_at - cohort_leads.became_sql_at
            ) / 86400
        ) as median_days_sql_to_opportunity,
        percentile_cont(0.5) within group (
            order by extract(
                epoch from cohort_leads.became_customer_at
                - cohort_leads.became_opportunity_at
            ) / 86400
        ) as median_days_opportunity_to_customer
    from cohort_leads
    group by
        cohort_leads.scoring_model_id,
        cohort_leads.segment,
        cohort_leads.industry,
        cohort_leads.product_interest,
        cohort_leads.original_source

),

final as (

    select
        md5(
            concat_ws(
                '|',
                cohorts.scoring_model_id,
                cohorts.segment,
                cohorts.industry,
                cohorts.product_interest,
                cohorts.original_source
            )
        ) as funnel_cohort_id,
        cast(cohorts.scoring_model_id as text) as scoring_model_id,
        {{ as_of_date() }} as as_of_date,
        cast(cohorts.segment as text) as segment,
        cast(cohorts.industry as text) as industry,
        cast(cohorts.product_interest as text) as product_interest,
        cast(cohorts.original_source as text) as original_source,
        cast(cohorts.lead_count as integer) as lead_count,
        cast(cohorts.model_mql_count as integer) as model_mql_count,
        cast(cohorts.model_sql_count as integer) as model_sql_count,
        cast(cohorts.model_mql_reached_sql_count as integer) as model_mql_reached_sql_count,
        cast(cohorts.crm_mql_count as integer) as crm_mql_count,
        cast(cohorts.crm_sql_count as integer) as crm_sql_count,
        cast(cohorts.opportunity_count as integer) as opportunity_count,
        cast(cohorts.customer_count as integer) as customer_count,
        cast(
            cohorts.model_mql_reached_sql_count / nullif(cohorts.model_mql_count, 0.0)
            as numeric(6, 4)
        ) as model_mql_to_sql_rate,
        cast(
            cohorts.opportunity_count / nullif(cohorts.crm_sql_count, 0.0) as numeric(6, 4)
        ) as sql_to_opportunity_rate,
        cast(
            cohorts.customer_count / nullif(cohorts.opportunity_count, 0.0) as numeric(6, 4)
        ) as opportunity_to_customer_rate,
        cast(cohorts.median_days_mql_to_sql as numeric(8, 1)) as median_days_mql_to_sql,
        cast(cohorts.median_days_sql_to_opportunity as numeric(8, 1))
            as median_days_sql_to_opportunity,
        cast(cohorts.median_days_opportunity_to_customer as numeric(8, 1))
            as median_days_opportunity_to_customer
    from cohorts

)

select * from final
