{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['lead_id', 'scoring_model_id'], 'unique': true}],
        pre_hook=["{{ delete_reprojected() }}"],
    )
}}
-- Every lead's score per scoring model as of the date the lead was last projected (a build
-- writes the leads int_leads__reprojected lists; every other lead's score is the same at the
-- new as-of date, see macros/projection.sql): the four components, the clamped total, the
-- band and fit grade, the MQL/SQL flags, the top reasons (for the CRM), the ruleset version,
-- and a hash of all of them. int_lead_scores__as_of dates them.

with

leads as (

    select * from {{ ref('int_leads__resolved_as_of') }}
    where {{ is_reprojected('lead_id') }}

),

segments as (

    select * from {{ ref('int_leads__segmented') }}

),

lines as (

    select * from {{ ref('int_lead_score_lines__projected') }}
    where {{ is_reprojected('lead_id') }}

),

activity_kinds as (

    select * from {{ ref('int_lead_activity_kinds__as_of') }}
    where {{ is_reprojected('lead_id') }}

),

scoring_models as (

    select * from {{ ref('int_scoring_models__versioned') }}

),

score_thresholds as (

    select * from {{ ref('score_thresholds') }}

),

components as (

    select
        lines.lead_id,
        lines.scoring_model_id,
        sum(lines.points_after_caps) filter (where lines.component = 'demographic')
            as demographic_score,
        sum(lines.points_after_caps) filter (where lines.component = 'behavioral')
            as behavioral_score,
        sum(lines.points_after_caps) filter (where lines.component = 'negative')
            as negative_score,
        sum(lines.decay_points) as decay_score,
        sum(lines.points) filter (where lines.rule_type = 'demographic') as fit_score,
        sum(lines.points) as total_score
    from lines
    group by lines.lead_id, lines.scoring_model_id

),

ranked_reasons as (

    select
        lines.lead_id,
        lines.scoring_model_id,
        lines.description || ' (+' || lines.points || ')' as reason,
        row_number() over (
            partition by lines.lead_id, lines.scoring_model_id
            order by lines.points desc, lines.rule_id asc, lines.window_start desc
        ) as reason_rank
    from lines
    where lines.points > 0 and lines.rule_type <> 'clamp'

),

top_reasons as (

    select
        ranked_reasons.lead_id,
        ranked_reasons.scoring_model_id,
        string_agg(ranked_reasons.reason, '; ' order by ranked_reasons.reason_rank)
            as top_reasons
    from ranked_reasons
    where ranked_reasons.reason_rank <= 3
    group by ranked_reasons.lead_id, ranked_reasons.scoring_model_id

),

decision_signals as (

    select
        activity_kinds.lead_id,
        max(activity_kinds.last_activity_date) as last_decision_date
    from activity_kinds
    where activity_kinds.funnel_stage = 'decision' and activity_kinds.is_engagement
    group by activity_kinds.lead_id

),

thresholds as (

    select
        leads.lead_id,
        scoring_models.scoring_model_id,
        segments.segment,
        coalesce(by_segment.warm_threshold, by_default.warm_threshold) as warm_threshold,
        coalesce(by_segment.hot_threshold, by_default.hot_threshold) as hot_threshold,
        coalesce(by_segment.mql_threshold, by_default.mql_threshold) as mql_threshold,
        coalesce(by_segment.sql_threshold, by_default.sql_threshold) as sql_threshold,
        coalesce(
            by_segment.sql_requires_decision_signal,
            by_default.sql_requires_decision_signal
        ) as sql_requires_decision_signal,
        coalesce(by_segment.sql_signal_window_days, by_default.sql_signal_window_days)
            as sql_signal_window_days,
        coalesce(by_segment.fit_grade_a, by_default.fit_grade_a) as fit_grade_a,
        coalesce(by_segment.fit_grade_b, by_default.fit_grade_b) as fit_grade_b,
        coalesce(by_segment.fit_grade_c, by_default.fit_grade_c) as fit_grade_c
    from leads
    cross join scoring_models
    inner join segments
        on leads.lead_id = segments.lead_id
    left join score_thresholds as by_segment
        on
            scoring_models.scoring_model_id = by_segment.scoring_model_id
            and segments.segment = by_segment.segment
    left join score_thresholds as by_default
        on
            scoring_models.scoring_model_id = by_default.scoring_model_id
            and by_default.segment = '*'

),

scored as (

    select
        leads.lead_id,
        scoring_models.scoring_model_id,
        leads.email,
        thresholds.segment,
        coalesce(components.demographic_score, 0) as demographic_score,
        coalesce(components.behavioral_score, 0) as behavioral_score,
        coalesce(components.negative_score, 0) as negative_score,
        coalesce(components.decay_score, 0) as decay_score,
        coalesce(components.fit_score, 0) as fit_score,
        coalesce(components.total_score, 0) as total_score,
        coalesce(
            decision_signals.last_decision_date
            > {{ as_of_date() }} - thresholds.sql_signal_window_days,
            false
        ) as has_decision_signal,
        thresholds.warm_threshold,
        thresholds.hot_threshold,
        thresholds.mql_threshold,
        thresholds.sql_threshold,
        thresholds.sql_requires_decision_signal,
        thresholds.fit_grade_a,
        thresholds.fit_grade_b,
        thresholds.fit_grade_c,
        top_reasons.top_reasons,
        scoring_models.ruleset_version
    from leads
    cross join scoring_models
    inner join thresholds
        on
            leads.lead_id = thresholds.lead_id
            and scoring_models.scoring_model_id = thresholds.scoring_model_id
    left join components
        on
            leads.lead_id = components.lead_id
            and scoring_models.scoring_model_id = components.scoring_model_id
    left join top_reasons
        on
            leads.lead_id = top_reasons.lead_id
            and scoring_models.scoring_model_id = top_reasons.scoring_model_id
    left join decision_signals
        on leads.lead_id = decision_signals.lead_id

),

flagged as (

    select
        scored.*,
        scored.total_score >= scored.mql_threshold as is_mql,
        scored.total_score >= scored.sql_threshold
        and (not scored.sql_requires_decision_signal or scored.has_decision_signal)
            as is_sql
    from scored

),

final as (

    select
        cast(flagged.lead_id as text) as lead_id,
        cast(flagged.scoring_model_id as text) as scoring_model_id,
        cast(flagged.email as text) as email,
        cast(flagged.segment as text) as segment,
        cast(flagged.demographic_score as integer) as demographic_score,
        cast(flagged.behavioral_score as integer) as behavioral_score,
        cast(flagged.negative_score as integer) as negative_score,
        cast(flagged.decay_score as integer) as decay_score,
        cast(
            flagged.demographic_score + flagged.behavioral_score
            + flagged.negative_score + flagged.decay_score as integer
        ) as raw_score,
        cast(flagged.total_score as integer) as total_score,
        cast(
            case
                when flagged.total_score >= flagged.hot_threshold then 'hot'
                when flagged.total_score >= flagged.warm_threshold then 'warm'
                else 'cold'
            end as text
        ) as band,
        cast(flagged.fit_score as integer) as fit_score,
        cast(
            case
                when flagged.fit_score >= flagged.fit_grade_a then 'A'
                when flagged.fit_score >= flagged.fit_grade_b then 'B'
                when flagged.fit_score >= flagged.fit_grade_c then 'C'
                else 'D'
            end as text
        ) as fit_grade,
        flagged.is_mql,
        flagged.is_sql,
        flagged.has_decision_signal,
        cast(flagged.top_reasons as text) as top_reasons,
        cast(flagged.ruleset_version as text) as ruleset_version,
        {{ as_of_date() }} as projected_as_of
    from flagged

),

hashed as (

    select
        final.*,
        {{ score_hash('final') }} as score_hash
    from final

)

select * from hashed
