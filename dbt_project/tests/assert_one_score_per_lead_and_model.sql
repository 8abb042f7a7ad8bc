-- Fan-out guard: for the as-of date, the score rows are exactly leads x scoring models.
-- Returns a row (and fails) when a join duplicated or dropped leads.

with

leads as (

    select count(*) as lead_count from {{ ref('int_leads__resolved_as_of') }}

),

scoring_models as (

    select count(*) as model_count from {{ ref('scoring_models') }}

),

scores as (

    select count(*) as score_count
    from {{ ref('fct_lead_scores') }}
    where as_of_date = {{ as_of_date() }}

),

final as (

    select
        leads.lead_count,
        scoring_models.model_count,
        scores.score_count
    from leads
    cross join scoring_models
    cross join scores
    where scores.score_count != leads.lead_count * scoring_models.model_count

)

select * from final
