-- Behavioural and negative activity rules: one line per lead, scoring model, rule and cap
-- window. A rule counts at most `cap_count` activities per window of `cap_window_days`
-- (windows are fixed, Monday-aligned calendar blocks, so a window's line does not change as
-- the as-of date moves on; no window length = one window over all history). Positive
-- behavioural points then lose weight with age when the model has a half-life decay rule:
-- decay_points = -round(points_after_caps * (1 - 0.5 ^ (days since the window's last
-- activity / half-life))). Negative points never decay.

with

activities as (

    select * from {{ ref('int_lead_activities__as_of') }}

),

activity_kinds as (

    select * from {{ ref('int_activity_kinds__categorized') }}

),

behavioral_rules as (

    select * from {{ ref('behavioral_rules') }}

),

decay_rules as (

    select * from {{ ref('decay_rules') }}

),

-- Rules are matched to the distinct activity kinds (one row per type and page), so a path
-- pattern is tested once per page, not once per activity.
rule_kinds as (

    select
        activity_kinds.activity_kind_id,
        behavioral_rules.scoring_model_id,
        behavioral_rules.rule_id,
        behavioral_rules.cap_window_days
    from activity_kinds
    inner join behavioral_rules
        on
            activity_kinds.activity_type = behavioral_rules.activity_type
            and activity_kinds.channel = behavioral_rules.channel
            and (
                behavioral_rules.path_pattern is null
                or coalesce(activity_kinds.page_path ~* behavioral_rules.path_pattern, false)
            )

),

windowed as (

    select
        activities.lead_id,
        rule_kinds.scoring_model_id,
        rule_kinds.rule_id,
        case
            when rule_kinds.cap_window_days is not null
                then cast(
                        date_bin(
                            make_interval(days => rule_kinds.cap_window_days),
                            cast(activities.activity_date as timestamp),
                            timestamp '2000-01-03'
                        ) as date
                    )
        end as window_start,
        activities.activity_date,
        activities.activity_count,
        activities.sample_activity_id
    from activities
    inner join rule_kinds
        on activities.activity_kind_id = rule_kinds.activity_kind_id

),

windows as (

    select
        windowed.lead_id,
        windowed.scoring_model_id,
        windowed.rule_id,
        windowed.window_start,
        min(windowed.activity_date) as first_activity_date,
        max(windowed.activity_date) as last_activity_date,
        min(windowed.sample_activity_id) as sample_activity_id,
        cast(sum(windowed.activity_count) as integer) as activity_count
    from windowed
    group by
        windowed.lead_id,
        windowed.scoring_model_id,
        windowed.rule_id,
        windowed.window_start

),

half_lives as (

    select
        decay_rules.scoring_model_id,
        min(decay_rules.half_life_days) as half_life_days
    from decay_rules
    where decay_rules.decay_type = 'half_life'
    group by decay_rules.scoring_model_id

),

capped as (

    select
        windows.*,
        behavioral_rules.component,
        behavioral_rules.rule_group,
        behavioral_rules.description,
        behavioral_rules.activity_type,
        behavioral_rules.points as points_per_activity,
        behavioral_rules.cap_window_days,
        least(
            windows.activity_count,
            coalesce(behavioral_rules.cap_count, windows.activity_count)
        ) as counted_count,
        half_lives.half_life_days
    from windows
    inner join behavioral_rules
        on
            windows.scoring_model_id = behavioral_rules.scoring_model_id
            and windows.rule_id = behavioral_rules.rule_id
    left join half_lives
        on windows.scoring_model_id = half_lives.scoring_model_id

),

scored as (

    select
        capped.*,
        capped.points_per_activity * capped.activity_count as raw_points,
        capped.points_per_activity * capped.counted_count as points_after_caps,
        case
            when
                capped.component = 'behavioral'
                and capped.points_per_activity > 0
                and capped.half_life_days is not null
                -- computed in double precision (numeric powers cost ~10 us each), rounded
                -- as numeric: half away from zero
                then -cast(
                        round(
                            cast(
                                capped.points_per_activity * capped.counted_count
                                * (
                                    1 - power(
                                        0.5,
                                        cast(
                                            {{ as_of_date() }} - capped.last_activity_date
                                            as double precision
                                        )
                                        / capped.half_life_days
                                    )
                                ) as numeric
                            )
                        ) as integer
                    )
            else 0
        end as decay_points
    from capped

),

final as (

    select
        scored.lead_id,
        scored.scoring_model_id,
        scored.rule_id,
        'behavioral' as rule_type,
        scored.component,
        scored.rule_group,
        scored.description,
        'activity' as source_type,
        scored.activity_type
        || ' x' || scored.activity_count
        || ' (' || scored.first_activity_date
        || case
            when scored.last_activity_date > scored.first_activity_date
                then ' to ' || scored.last_activity_date
            else ''
        end
        || ')' as source_ref,
        coalesce(scored.window_start, scored.first_activity_date) as window_start,
        coalesce(
            scored.window_start + scored.cap_window_days - 1, scored.last_activity_date
        ) as window_end,
        scored.sample_activity_id,
        scored.activity_count,
        cast(scored.counted_count as integer) as counted_count,
        cast(scored.raw_points as integer) as raw_points,
        cast(scored.points_after_caps as integer) as points_after_caps,
        scored.decay_points,
        cast(scored.points_after_caps + scored.decay_points as integer) as points
    from scored

)

select * from final
