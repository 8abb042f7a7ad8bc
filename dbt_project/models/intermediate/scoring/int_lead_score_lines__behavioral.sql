-- Behavioural and negative activity rules: one line per lead, scoring model, rule and cap
-- window. A rule counts at most `cap_count` activities per window of `cap_window_days`
-- (windows are fixed, Monday-aligned calendar blocks, so a window's line does not change as
-- the as-of date moves on; no window length = one window over all history). Positive
-- behavioural points then lose weight with age when the model has a half-life decay rule:
-- decay_points = -round(points_after_caps * (1 - 0.5 ^ (days since the window's last
-- activity / half-life))). Negative points never decay. `changes_on`: the first day the
-- decay may take one point more. The leads this build projects only (int_leads__reprojected,
-- through the rule windows).

with

-- Per lead, model, rule and cap window at the as-of date (from the actors' state).
windows as (

    select * from {{ ref('int_lead_rule_windows__as_of') }}

),

behavioral_rules as (

    select * from {{ ref('behavioral_rules') }}

),

decay_rules as (

    select * from {{ ref('decay_rules') }}

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
        cast(scored.points_after_caps + scored.decay_points as integer) as points,
        -- the first day the half-life decay may round to one point more: when
        -- P * (1 - 0.5 ^ (age / h)) reaches |decay_points| + 0.5 (P = points_after_caps),
        -- the first whole day from then (less a micro-day against floating-point error), and
        -- after the as-of date (the step is not there yet); none once it is all of P
        case
            when
                scored.half_life_days is not null
                and scored.component = 'behavioral'
                and scored.points_per_activity > 0
                and scored.points_after_caps > 0
                and -scored.decay_points + 0.5 < scored.points_after_caps
                then greatest(
                        scored.last_activity_date + cast(
                            ceil(
                                scored.half_life_days
                                * ln(
                                    1 - (-scored.decay_points + 0.5)
                                    / cast(scored.points_after_caps as double precision)
                                )
                                / ln(0.5)
                                - 1e-6
                            ) as integer
                        ),
                        {{ as_of_date() }} + 1
                    )
        end as changes_on
    from scored

)

select * from final
