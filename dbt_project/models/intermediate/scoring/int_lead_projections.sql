{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['lead_id'], 'unique': true}],
        pre_hook=["{{ delete_reprojected() }}"],
    )
}}
-- depends_on: {{ ref('int_lead_scores__projected') }}
-- What each lead's projection was computed from, one row per lead (macros/projection.sql):
-- the as-of date, the lead's fingerprint (its row and its actors), the rules, the newest
-- activity-state change seen, and `changes_on`, the first day its score or lines may change
-- with no new input: the earliest of its lines' own (a half-life step, a bonus activity
-- leaving the window) and of the days an inactivity or unopened-email penalty starts or the
-- decision signal expires (for any segment's window). Null: nothing changes with time alone.
-- Written last, after the lines and scores it describes, so a build that fails before leaves
-- them to be projected again.

with

reprojected as (

    select * from {{ ref('int_leads__reprojected') }}
    where is_scored

),

lines as (

    select * from {{ ref('int_lead_score_lines__projected') }}
    where {{ is_reprojected('lead_id') }}

),

activity_kinds as (

    select * from {{ ref('int_lead_activity_kinds__as_of') }}
    where {{ is_reprojected('lead_id') }}

),

actors as (

    select * from {{ ref('int_activity_actors__state') }}

),

decay_rules as (

    select * from {{ ref('decay_rules') }}

),

score_thresholds as (

    select * from {{ ref('score_thresholds') }}

),

line_changes as (

    select
        lines.lead_id,
        min(lines.changes_on) as changes_on
    from lines
    where lines.changes_on > {{ as_of_date() }}
    group by lines.lead_id

),

-- the days a decay penalty or the decision signal turns on or off with no new activity, as
-- decay (int_lead_score_lines__decay) and the scores (int_lead_scores__projected) test them
last_engagement as (

    select
        activity_kinds.lead_id,
        channels.channel,
        max(activity_kinds.last_activity_date) as last_engaged_on
    from activity_kinds
    cross join
        lateral (values (activity_kinds.channel), ('any')) as channels (channel)
    where activity_kinds.is_engagement
    group by activity_kinds.lead_id, channels.channel

),

email_opens as (

    select
        activity_kinds.lead_id,
        max(activity_kinds.last_activity_date) filter (
            where activity_kinds.activity_type in ('email_open', 'email_click')
        ) as last_opened_on,
        max(activity_kinds.last_activity_date) filter (
            where activity_kinds.funnel_stage = 'decision' and activity_kinds.is_engagement
        ) as last_decision_date
    from activity_kinds
    group by activity_kinds.lead_id

),

first_unopened as (

    select
        email_opens.lead_id,
        email_opens.last_opened_on,
        min(activity_kinds.unopened_on) as first_unopened_on
    from email_opens
    inner join activity_kinds
        on email_opens.lead_id = activity_kinds.lead_id
    where
        activity_kinds.activity_type = 'email_delivered'
        and activity_kinds.unopened_on
        > coalesce(email_opens.last_opened_on, date '0001-01-01')
    group by email_opens.lead_id, email_opens.last_opened_on

),

turning_days as (

    select
        last_engagement.lead_id,
        last_engagement.last_engaged_on + decay_rules.inactivity_days as turns_on
    from last_engagement
    inner join decay_rules
        on
            last_engagement.channel = decay_rules.channel
            and decay_rules.decay_type = 'inactivity'

    union all

    select
        first_unopened.lead_id,
        coalesce(first_unopened.last_opened_on, first_unopened.first_unopened_on)
        + decay_rules.inactivity_days as turns_on
    from first_unopened
    inner join decay_rules
        on decay_rules.decay_type = 'unopened_email'

    union all

    select
        email_opens.lead_id,
        email_opens.last_decision_date + score_thresholds.sql_signal_window_days as turns_on
    from email_opens
    cross join score_thresholds
    where email_opens.last_decision_date is not null

),

kind_changes as (

    select
        turning_days.lead_id,
        min(turning_days.turns_on) as changes_on
    from turning_days
    where turning_days.turns_on > {{ as_of_date() }}
    group by turning_days.lead_id

),

final as (

    select
        reprojected.lead_id,
        reprojected.fingerprint,
        reprojected.rules_version,
        {{ as_of_date() }} as projected_as_of,
        (select max(actors.changed_at) from actors) as state_changed_at,
        least(line_changes.changes_on, kind_changes.changes_on) as changes_on
    from reprojected
    left join line_changes
        on reprojected.lead_id = line_changes.lead_id
    left join kind_changes
        on reprojected.lead_id = kind_changes.lead_id

)

select * from final
