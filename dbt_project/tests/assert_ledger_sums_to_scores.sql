-- Every current score decomposes exactly into its ledger lines: for the scores this build
-- changed, each lead and model's lines add up to total_score, and by component to the
-- component scores. Returns the scores that do not (and fails).

with

scores as (

    select current_scores.*
    from {{ ref('fct_lead_scores') }} as current_scores
    inner join {{ ref('int_lead_score_changes') }} as changes
        on
            current_scores.lead_id = changes.lead_id
            and current_scores.scoring_model_id = changes.scoring_model_id

),

ledger as (

    select ledger.*
    from {{ ref('fct_lead_score_ledger') }} as ledger
    inner join {{ ref('int_lead_score_changes') }} as changes
        on
            ledger.lead_id = changes.lead_id
            and ledger.scoring_model_id = changes.scoring_model_id

),

line_sums as (

    select
        ledger.score_id,
        sum(ledger.points) as points,
        sum(ledger.points_after_caps) filter (where ledger.component = 'demographic')
            as demographic_points,
        sum(ledger.points_after_caps) filter (where ledger.component = 'behavioral')
            as behavioral_points,
        sum(ledger.points_after_caps) filter (where ledger.component = 'negative')
            as negative_points,
        sum(ledger.decay_points) as decay_points,
        count(*) filter (
            where ledger.points <> ledger.points_after_caps + ledger.decay_points
        ) as unbalanced_lines
    from ledger
    group by ledger.score_id

),

final as (

    select
        scores.score_id,
        scores.total_score,
        line_sums.points as ledger_points
    from scores
    left join line_sums
        on scores.score_id = line_sums.score_id
    where
        scores.total_score <> coalesce(line_sums.points, 0)
        or scores.demographic_score <> coalesce(line_sums.demographic_points, 0)
        or scores.behavioral_score <> coalesce(line_sums.behavioral_points, 0)
        or scores.negative_score <> coalesce(line_sums.negative_points, 0)
        or scores.decay_score <> coalesce(line_sums.decay_points, 0)
        or coalesce(line_sums.unbalanced_lines, 0) > 0

)

select * from final
