{{ config(materialized='table') }}
-- Every lead's score per scoring model as of the build's as-of date (rebuilt each run, read
-- by the daily summary and by the comparison with the current scores): the projected scores
-- (int_lead_scores__projected, exact at this date for every lead) dated to it. lead_score_history
-- keeps a version of it only when score_hash changes, so the warehouse grows with change, not
-- with leads x days; the summary mart counts it per day.
-- MQL/SQL dates need the history (the day a lead first qualified) and are added there.

with

projected as (

    select * from {{ ref('int_lead_scores__projected') }}

),

final as (

    select
        md5(
            projected.lead_id || '|' || projected.scoring_model_id || '|' || {{ as_of_date() }}
        ) as score_id,
        projected.lead_id,
        projected.scoring_model_id,
        {{ as_of_date() }} as as_of_date,
        projected.email,
        projected.segment,
        projected.demographic_score,
        projected.behavioral_score,
        projected.negative_score,
        projected.decay_score,
        projected.raw_score,
        projected.total_score,
        projected.band,
        projected.fit_score,
        projected.fit_grade,
        projected.is_mql,
        projected.is_sql,
        projected.has_decision_signal,
        projected.top_reasons,
        projected.ruleset_version,
        {{ as_of_cutoff() }} as scored_at,
        projected.score_hash
    from projected

)

select * from final
