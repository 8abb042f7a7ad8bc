{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='as_of_date',
        on_schema_change='fail',
        full_refresh=(none if var('rebuild_score_history', false) else false),
    )
}}
-- A --full-refresh run leaves this table's past days alone (var rebuild_score_history: true
-- rebuilds it, for an upgrade that changes its columns).
-- The score ledger: one line per rule application behind each score in fct_lead_scores -
-- an attribute rule that matched, an activity rule's cap window, a bonus, a decay, and the
-- group-cap, decay-floor and clamp adjustments. For every lead, model and as-of date,
-- sum(points) = total_score, and points = points_after_caps + decay_points on every line.
-- Re-running an as-of date replaces that date's lines. The primary key (as-of date, lead,
-- line) is also the index that finds a lead's lines; lines are written in its order, so a
-- day's millions of lines extend the index instead of splitting pages all over it.

with

lines as (

    select * from {{ ref('int_lead_score_lines__assembled') }}

),

scoring_models as (

    select * from {{ ref('int_scoring_models__versioned') }}

),

final as (

    select
        cast(lines.score_line_id as text) as score_line_id,
        md5(
            lines.lead_id || '|' || lines.scoring_model_id || '|' || {{ as_of_date() }}
        ) as score_id,
        cast(lines.lead_id as text) as lead_id,
        cast(lines.scoring_model_id as text) as scoring_model_id,
        {{ as_of_date() }} as as_of_date,
        cast(lines.rule_id as text) as rule_id,
        cast(lines.rule_type as text) as rule_type,
        cast(lines.component as text) as component,
        cast(lines.rule_group as text) as rule_group,
        cast(lines.description as text) as description,
        cast(lines.source_type as text) as source_type,
        cast(lines.source_ref as text) as source_ref,
        lines.window_start,
        lines.window_end,
        cast(lines.sample_activity_id as text) as sample_activity_id,
        lines.activity_count,
        lines.counted_count,
        cast(lines.raw_points as integer) as raw_points,
        cast(lines.points_after_caps as integer) as points_after_caps,
        cast(lines.decay_points as integer) as decay_points,
        cast(lines.points as integer) as points,
        cast(scoring_models.ruleset_version as text) as ruleset_version,
        {{ as_of_cutoff() }} as scored_at
    from lines
    inner join scoring_models
        on lines.scoring_model_id = scoring_models.scoring_model_id
    order by lines.lead_id asc, lines.score_line_id asc

)

select * from final
