{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['lead_id']}],
        pre_hook=["{{ delete_reprojected() }}"],
    )
}}
-- Every score line of every lead and scoring model as of the date the lead was last projected
-- (`projected_as_of`; a build writes the leads int_leads__reprojected lists, see
-- macros/projection.sql), including the
-- adjustments that make the lines add up exactly to the published score:
--   group_cap    behavioural lines of a rule group worth more than the group's max_points
--                are cut back by one line (after half-life decay);
--   decay_floor  decay may not take the engagement part (behavioural + decay) below the
--                model's decay_floor, so a long-dormant lead can recover when it returns;
--   clamp        the total is clamped to the model's [score_floor, score_ceiling].
-- sum(points) over a lead's lines = its total score; by component = its component scores.
-- `changes_on`: the first day the line may change with no new activity (null: never).
-- int_lead_score_lines__assembled moves the lines to the as-of date.

with

leads as (

    select * from {{ ref('int_leads__resolved_as_of') }}
    where {{ is_reprojected('lead_id') }}

),

demographic_lines as (

    select * from {{ ref('int_lead_score_lines__demographic') }}

),

behavioral_lines as (

    select * from {{ ref('int_lead_score_lines__behavioral') }}

),

bonus_lines as (

    select * from {{ ref('int_lead_score_lines__bonus') }}

),

decay_lines as (

    select * from {{ ref('int_lead_score_lines__decay') }}

),

rule_groups as (

    select * from {{ ref('behavioral_rule_groups') }}

),

scoring_models as (

    select * from {{ ref('int_scoring_models__versioned') }}

),

-- Only leads that exist at the as-of date and are projected again (the activity as of that
-- date already holds only theirs; this guard is a cheap hashed lookup).
rule_lines as (

    select matched_lines.*
    from (
        select * from demographic_lines
        union all
        select * from behavioral_lines
        union all
        select * from bonus_lines
        union all
        select * from decay_lines
    ) as matched_lines
    where matched_lines.lead_id in (select leads.lead_id from leads)

),

-- One pass over the lines: per lead, model and rule group, what the adjustments need.
group_sums as (

    select
        rule_lines.lead_id,
        rule_lines.scoring_model_id,
        rule_lines.rule_group,
        sum(rule_lines.points) filter (
            where rule_lines.rule_type = 'behavioral' and rule_lines.component = 'behavioral'
        ) as group_points,
        coalesce(
            sum(rule_lines.points_after_caps) filter (
                where rule_lines.component = 'behavioral'
            ),
            0
        ) as behavioral_points,
        sum(rule_lines.decay_points) as decay_points,
        sum(rule_lines.points) as points
    from rule_lines
    group by
        rule_lines.lead_id,
        rule_lines.scoring_model_id,
        rule_lines.rule_group

),

group_cap_lines as (

    select
        group_sums.lead_id,
        group_sums.scoring_model_id,
        'group_cap:' || group_sums.rule_group as rule_id,
        'group_cap' as rule_type,
        'behavioral' as component,
        group_sums.rule_group,
        rule_groups.description || ' (capped at ' || rule_groups.max_points || ')'
            as description,
        'score' as source_type,
        group_sums.rule_group || ' earned ' || group_sums.group_points
            as source_ref,
        cast(null as date) as window_start,
        cast(null as date) as window_end,
        cast(null as text) as sample_activity_id,
        cast(null as integer) as activity_count,
        cast(null as integer) as counted_count,
        0 as raw_points,
        cast(rule_groups.max_points - group_sums.group_points as integer)
            as points_after_caps,
        0 as decay_points,
        cast(rule_groups.max_points - group_sums.group_points as integer) as points,
        cast(null as date) as changes_on
    from group_sums
    inner join rule_groups
        on
            group_sums.scoring_model_id = rule_groups.scoring_model_id
            and group_sums.rule_group = rule_groups.rule_group
    where group_sums.group_points > rule_groups.max_points

),

-- Per lead and model, after the group caps: the engagement part and the running total.
engagement as (

    select
        group_sums.lead_id,
        group_sums.scoring_model_id,
        sum(group_sums.behavioral_points) + coalesce(sum(group_cap_lines.points), 0)
            as behavioral_points,
        sum(group_sums.decay_points) as decay_points,
        sum(group_sums.points) + coalesce(sum(group_cap_lines.points), 0) as points
    from group_sums
    left join group_cap_lines
        on
            group_sums.lead_id = group_cap_lines.lead_id
            and group_sums.scoring_model_id = group_cap_lines.scoring_model_id
            and group_sums.rule_group = group_cap_lines.rule_group
    group by group_sums.lead_id, group_sums.scoring_model_id

),

floor_lines as (

    select
        engagement.lead_id,
        engagement.scoring_model_id,
        'decay_floor' as rule_id,
        'decay_floor' as rule_type,
        'decay' as component,
        cast(null as text) as rule_group,
        'Decay stops at the model''s floor of ' || scoring_models.decay_floor
            as description,
        'score' as source_type,
        'behavioural ' || engagement.behavioral_points
        || ', decay ' || engagement.decay_points as source_ref,
        cast(null as date) as window_start,
        cast(null as date) as window_end,
        cast(null as text) as sample_activity_id,
        cast(null as integer) as activity_count,
        cast(null as integer) as counted_count,
        0 as raw_points,
        0 as points_after_caps,
        cast(
            least(
                -engagement.decay_points,
                scoring_models.decay_floor
                - (engagement.behavioral_points + engagement.decay_points)
            ) as integer
        ) as decay_points,
        cast(
            least(
                -engagement.decay_points,
                scoring_models.decay_floor
                - (engagement.behavioral_points + engagement.decay_points)
            ) as integer
        ) as points,
        cast(null as date) as changes_on
    from engagement
    inner join scoring_models
        on engagement.scoring_model_id = scoring_models.scoring_model_id
    where
        scoring_models.decay_floor is not null
        and engagement.decay_points < 0
        and engagement.behavioral_points + engagement.decay_points
        < scoring_models.decay_floor

),

line_totals as (

    select
        engagement.lead_id,
        engagement.scoring_model_id,
        engagement.points + coalesce(floor_lines.points, 0) as line_points
    from engagement
    left join floor_lines
        on
            engagement.lead_id = floor_lines.lead_id
            and engagement.scoring_model_id = floor_lines.scoring_model_id

),

-- Every lead x model, so a lead with no lines still gets its clamp line when 0 is outside
-- the model's range.
raw_totals as (

    select
        leads.lead_id,
        scoring_models.scoring_model_id,
        coalesce(line_totals.line_points, 0) as raw_score
    from leads
    cross join scoring_models
    left join line_totals
        on
            leads.lead_id = line_totals.lead_id
            and scoring_models.scoring_model_id = line_totals.scoring_model_id

),

clamped_totals as (

    select
        raw_totals.lead_id,
        raw_totals.scoring_model_id,
        greatest(
            scoring_models.score_floor,
            least(scoring_models.score_ceiling, raw_totals.raw_score)
        ) as total_score
    from raw_totals
    inner join scoring_models
        on raw_totals.scoring_model_id = scoring_models.scoring_model_id

),

clamp_lines as (

    select
        raw_totals.lead_id,
        raw_totals.scoring_model_id,
        'clamp' as rule_id,
        'clamp' as rule_type,
        'clamp' as component,
        cast(null as text) as rule_group,
        'Score kept within ' || scoring_models.score_floor || ' to '
        || scoring_models.score_ceiling as description,
        'score' as source_type,
        'unclamped total ' || raw_totals.raw_score as source_ref,
        cast(null as date) as window_start,
        cast(null as date) as window_end,
        cast(null as text) as sample_activity_id,
        cast(null as integer) as activity_count,
        cast(null as integer) as counted_count,
        0 as raw_points,
        cast(clamped_totals.total_score - raw_totals.raw_score as integer) as points_after_caps,
        0 as decay_points,
        cast(clamped_totals.total_score - raw_totals.raw_score as integer) as points,
        cast(null as date) as changes_on
    from raw_totals
    inner join scoring_models
        on raw_totals.scoring_model_id = scoring_models.scoring_model_id
    inner join clamped_totals
        on
            raw_totals.lead_id = clamped_totals.lead_id
            and raw_totals.scoring_model_id = clamped_totals.scoring_model_id
    where clamped_totals.total_score <> raw_totals.raw_score

),

all_lines as (

    select * from rule_lines
    union all
    select * from group_cap_lines
    union all
    select * from floor_lines
    union all
    select * from clamp_lines

),

final as (

    select
        md5(
            concat_ws(
                '|',
                all_lines.lead_id,
                all_lines.scoring_model_id,
                all_lines.rule_id,
                all_lines.window_start
            )
        ) as score_line_id,
        all_lines.lead_id,
        all_lines.scoring_model_id,
        all_lines.rule_id,
        all_lines.rule_type,
        all_lines.component,
        all_lines.rule_group,
        all_lines.description,
        all_lines.source_type,
        all_lines.source_ref,
        all_lines.window_start,
        all_lines.window_end,
        all_lines.sample_activity_id,
        all_lines.activity_count,
        all_lines.counted_count,
        all_lines.raw_points,
        all_lines.points_after_caps,
        all_lines.decay_points,
        all_lines.points,
        {{ as_of_date() }} as projected_as_of,
        all_lines.changes_on
    from all_lines

)

select * from final
