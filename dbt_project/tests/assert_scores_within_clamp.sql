-- Every total of the as-of date lies within its model's clamp: a total outside
-- [score_floor, score_ceiling] means a clamp line went missing.

with

scores as (

    select * from {{ ref('int_lead_scores__as_of') }}

),

scoring_models as (

    select * from {{ ref('scoring_models') }}

),

final as (

    select
        scores.score_id,
        scores.total_score,
        scoring_models.score_floor,
        scoring_models.score_ceiling
    from scores
    inner join scoring_models
        on scores.scoring_model_id = scoring_models.scoring_model_id
    where
        scores.total_score < scoring_models.score_floor
        or scores.total_score > scoring_models.score_ceiling

)

select * from final
