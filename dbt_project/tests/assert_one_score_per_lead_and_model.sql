-- Fan-out guard: for the as-of date, the day's scores are exactly leads x scoring models, and
-- the current scores hold one row per lead and model. Returns a row (and fails) when a join
-- duplicated or dropped leads.

with

leads as (

    select count(*) as lead_count from {{ ref('int_leads__resolved_as_of') }}

),

scoring_models as (

    select count(*) as model_count from {{ ref('scoring_models') }}

),

scores as (

    select
        count(*) as score_count,
        count(distinct (scores.lead_id, scores.scoring_model_id)) as key_count
    from {{ ref('int_lead_scores__as_of') }} as scores

),

final as (

    select
        leads.lead_count,
        scoring_models.model_count,
        scores.score_count
    from leads
    cross join scoring_models
    cross join scores
    where
        scores.score_count != leads.lead_count * scoring_models.model_count
        or scores.key_count != scores.score_count

)

select * from final
