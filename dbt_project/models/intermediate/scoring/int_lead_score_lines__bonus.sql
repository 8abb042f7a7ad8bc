-- Repeat and multi-channel engagement bonuses: one line per lead, scoring model and bonus
-- rule that pays. Within the rule's look-back window (ending on the as-of date) the rule
-- counts distinct channels (multi_channel) or distinct active weeks (repeat_engagement) of
-- engagement; every count from min_count on earns `points`, up to `max_points`. The window
-- moves with the as-of date; `changes_on` is the first day an activity leaves it.

with

bonus_rules as (

    select * from {{ ref('engagement_bonus_rules') }}

),

-- Only engagement inside the longest look-back can pay a bonus (the recent activity holds
-- just that), so the grouping below sorts weeks of activity, not all of it.
activities as (

    select * from {{ ref('int_lead_activities__recent') }}
    where is_engagement

),

counts as (

    select
        activities.lead_id,
        bonus_rules.scoring_model_id,
        bonus_rules.rule_id,
        case bonus_rules.bonus_type
            when 'multi_channel' then count(distinct activities.channel)
            when 'repeat_engagement'
                then count(distinct date_trunc('week', activities.activity_date))
        end as engagement_count,
        min(activities.activity_date) as oldest_activity_date
    from activities
    inner join bonus_rules
        on activities.age_days < bonus_rules.window_days
    group by
        activities.lead_id,
        bonus_rules.scoring_model_id,
        bonus_rules.rule_id,
        bonus_rules.bonus_type

),

paid as (

    select
        counts.lead_id,
        counts.scoring_model_id,
        counts.rule_id,
        bonus_rules.bonus_type,
        bonus_rules.description,
        bonus_rules.window_days,
        cast(counts.engagement_count as integer) as engagement_count,
        cast(counts.engagement_count - bonus_rules.min_count + 1 as integer) as counted_count,
        (counts.engagement_count - bonus_rules.min_count + 1) * bonus_rules.points
            as raw_points,
        least(
            (counts.engagement_count - bonus_rules.min_count + 1) * bonus_rules.points,
            coalesce(bonus_rules.max_points, bonus_rules.points * counts.engagement_count)
        ) as points_after_caps,
        -- the first day an activity leaves the window (the count may fall)
        counts.oldest_activity_date + bonus_rules.window_days as changes_on
    from counts
    inner join bonus_rules
        on
            counts.scoring_model_id = bonus_rules.scoring_model_id
            and counts.rule_id = bonus_rules.rule_id
    where counts.engagement_count >= bonus_rules.min_count

),

final as (

    select
        paid.lead_id,
        paid.scoring_model_id,
        paid.rule_id,
        'bonus' as rule_type,
        'behavioral' as component,
        cast(null as text) as rule_group,
        paid.description,
        'engagement' as source_type,
        paid.engagement_count
        || case
            when paid.bonus_type = 'multi_channel' then ' channels'
            else ' active weeks'
        end
        || ' in the last ' || paid.window_days || ' days' as source_ref,
        {{ as_of_date() }} - paid.window_days + 1 as window_start,
        {{ as_of_date() }} as window_end,
        cast(null as text) as sample_activity_id,
        paid.engagement_count as activity_count,
        paid.counted_count,
        cast(paid.raw_points as integer) as raw_points,
        cast(paid.points_after_caps as integer) as points_after_caps,
        0 as decay_points,
        cast(paid.points_after_caps as integer) as points,
        paid.changes_on
    from paid

)

select * from final
