-- Inactivity decay: one line per lead, scoring model and decay rule that applies at the
-- as-of date. `inactivity`: the lead engaged on the channel (or on any channel) before, but
-- not in the last `inactivity_days` days. `unopened_email`: no email opened or clicked for
-- `inactivity_days` days, `points` per email delivered since the last open, at most
-- `max_points` in all. A lead who engages again loses the line on the next score: decay is
-- computed at the as-of date from the last days in the activity state, never stored, which
-- is how a score recovers.
-- (Half-life decay of old points is on the behavioural lines themselves.) The leads this
-- build projects only (int_leads__reprojected); `changes_on` is null: the day a penalty
-- starts is found from the activity kinds by int_lead_projections.

with

-- The lead's activity per kind at the as-of date: one import per use, each read once (a CTE
-- read several times is materialized whole).
engagements as (

    select * from {{ ref('int_lead_activity_kinds__as_of') }}
    where is_engagement and {{ is_reprojected('lead_id') }}

),

email_kinds as (

    select * from {{ ref('int_lead_activity_kinds__as_of') }}
    where channel = 'email' and {{ is_reprojected('lead_id') }}

),

decay_rules as (

    select * from {{ ref('decay_rules') }}

),

last_engagement_by_channel as (

    select
        engagements.lead_id,
        engagements.channel,
        max(engagements.last_activity_date) as last_engaged_on
    from engagements
    group by engagements.lead_id, engagements.channel

),

last_engagement as (

    select
        last_engagement_by_channel.lead_id,
        channels.channel,
        max(last_engagement_by_channel.last_engaged_on) as last_engaged_on
    from last_engagement_by_channel
    cross join
        lateral (
            values (last_engagement_by_channel.channel), ('any')
        ) as channels (channel)
    group by last_engagement_by_channel.lead_id, channels.channel

),

inactivity_lines as (

    select
        last_engagement.lead_id,
        decay_rules.scoring_model_id,
        decay_rules.rule_id,
        decay_rules.description,
        'last ' || last_engagement.channel || ' engagement on '
        || last_engagement.last_engaged_on as source_ref,
        last_engagement.last_engaged_on + decay_rules.inactivity_days as window_start,
        1 as counted_count,
        decay_rules.points
    from last_engagement
    inner join decay_rules
        on
            last_engagement.channel = decay_rules.channel
            and decay_rules.decay_type = 'inactivity'
    where {{ as_of_date() }} - last_engagement.last_engaged_on >= decay_rules.inactivity_days

),

-- Per lead: the last open or click, and the emails delivered after it (the kinds keep the
-- day of each delivery after an actor's own last open); one pass over the email kinds.
email_days as (

    select
        email_kinds.lead_id,
        max(email_kinds.last_activity_date) filter (
            where email_kinds.activity_type in ('email_open', 'email_click')
        ) over (partition by email_kinds.lead_id) as last_opened_on,
        email_kinds.activity_type,
        email_kinds.unopened_on,
        email_kinds.activity_count
    from email_kinds

),

unopened as (

    select
        email_days.lead_id,
        email_days.last_opened_on,
        min(email_days.unopened_on) as first_unopened_on,
        cast(sum(email_days.activity_count) as integer) as unopened_count
    from email_days
    where
        email_days.activity_type = 'email_delivered'
        and email_days.unopened_on > coalesce(email_days.last_opened_on, date '0001-01-01')
    group by email_days.lead_id, email_days.last_opened_on

),

unopened_lines as (

    select
        unopened.lead_id,
        decay_rules.scoring_model_id,
        decay_rules.rule_id,
        decay_rules.description,
        unopened.unopened_count || ' emails unopened since '
        || coalesce(cast(unopened.last_opened_on as text), 'ever') as source_ref,
        unopened.first_unopened_on as window_start,
        unopened.unopened_count as counted_count,
        greatest(
            decay_rules.points * unopened.unopened_count,
            coalesce(decay_rules.max_points, decay_rules.points * unopened.unopened_count)
        ) as points
    from unopened
    inner join decay_rules
        on decay_rules.decay_type = 'unopened_email'
    where
        {{ as_of_date() }}
        - coalesce(unopened.last_opened_on, unopened.first_unopened_on)
        >= decay_rules.inactivity_days

),

applied as (

    select * from inactivity_lines
    union all
    select * from unopened_lines

),

final as (

    select
        applied.lead_id,
        applied.scoring_model_id,
        applied.rule_id,
        'decay' as rule_type,
        'decay' as component,
        cast(null as text) as rule_group,
        applied.description,
        'engagement' as source_type,
        applied.source_ref,
        applied.window_start,
        {{ as_of_date() }} as window_end,
        cast(null as text) as sample_activity_id,
        cast(null as integer) as activity_count,
        applied.counted_count,
        0 as raw_points,
        0 as points_after_caps,
        cast(applied.points as integer) as decay_points,
        cast(applied.points as integer) as points,
        cast(null as date) as changes_on
    from applied

)

select * from final
