{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['lead_id', 'scoring_model_id'],
        on_schema_change='fail',
        full_refresh=(none if var('rebuild_score_history', false) else false),
        pre_hook=["{{ delete_changed_scores() }}"],
    )
}}
-- depends_on: {{ ref('int_lead_score_changes') }}
-- The score ledger: the lines behind each current score in fct_lead_scores, one per rule
-- application - an attribute rule that matched, an activity rule's cap window, a bonus, a
-- decay, and the group-cap, decay-floor and clamp adjustments. For every lead and model,
-- sum(points) = total_score, and points = points_after_caps + decay_points on every line. A
-- build rewrites the lines of the scores it changes (as of its date, `as_of_date`); the lines
-- of any past date are recomputed on demand (`lead-scoring explain`, macro explain_lead_score).
-- A --full-refresh run leaves it alone (var rebuild_score_history: true rebuilds it).

with

lines as (

    select * from {{ ref('int_lead_score_lines__assembled') }}

),

scoring_models as (

    select * from {{ ref('int_scoring_models__versioned') }}

),

current_scores as (

    select * from {{ ref('fct_lead_scores') }}

),

{% if is_incremental() %}

changes as (

    select * from {{ ref('int_lead_score_changes') }}
    where change_type <> 'dropped'

),

{% endif %}

final as (

    select
        cast(lines.score_line_id as text) as score_line_id,
        current_scores.score_id,
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
    inner join current_scores
        on
            lines.lead_id = current_scores.lead_id
            and lines.scoring_model_id = current_scores.scoring_model_id
    {% if is_incremental() %}
        inner join changes
            on
                lines.lead_id = changes.lead_id
                and lines.scoring_model_id = changes.scoring_model_id
    {% endif %}
    order by lines.lead_id asc, lines.score_line_id asc

)

select * from final
