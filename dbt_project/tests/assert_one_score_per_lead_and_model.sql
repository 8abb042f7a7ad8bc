-- Fan-out guard: for the as-of date, the day's scores are exactly leads x scoring models, one
-- per lead and model (the current scores' unique index holds the same for them). Returns a
-- row (and fails) when a join duplicated or dropped leads.

with

leads as (

    select count(*) as lead_count from {{ ref('int_leads__resolved_as_of') }}

),

scoring_models as (

    select count(*) as model_count from {{ ref('scoring_models') }}

),

scores as (

    select * from {{ ref('int_lead_scores__as_of') }}

),

score_keys as (

    select distinct
        scores.lead_id,
        scores.scoring_model_id
    from scores

),

counted as (

    select
        (select count(*) from scores) as score_count,
        (select count(*) from score_keys) as key_count

),

final as (

    select
        leads.lead_count,
        scoring_models.model_count,
        counted.score_count
    from leads
    cross join scoring_models
    cross join counted
    where
        counted.score_count != leads.lead_count * scoring_models.model_count
        or counted.key_count != counted.score_count

)

select * from final
