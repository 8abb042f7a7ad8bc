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
-- leaving the window) and of every day of its activity kinds plus each decay rule's
-- inactivity days and each threshold's decision-signal window (an inactivity or
-- unopened-email penalty starting, a decision signal expiring); a superset of the days those
-- can happen on. Null: nothing changes with time alone. Written last, after the lines and
-- scores it describes, so a build that fails before leaves them to be projected again.

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

offsets as (

    select decay_rules.inactivity_days as offset_days
    from decay_rules
    where decay_rules.inactivity_days is not null

    union

    select score_thresholds.sql_signal_window_days as offset_days
    from score_thresholds
    where score_thresholds.sql_signal_window_days is not null

),

kind_days as (

    select distinct
        activity_kinds.lead_id,
        kind_dates.activity_day
    from activity_kinds
    cross join
        lateral (
            values (activity_kinds.last_activity_date), (activity_kinds.unopened_on)
        ) as kind_dates (activity_day)
    where kind_dates.activity_day is not null

),

kind_changes as (

    select
        kind_days.lead_id,
        min(kind_days.activity_day + offsets.offset_days) as changes_on
    from kind_days
    cross join offsets
    where kind_days.activity_day + offsets.offset_days > {{ as_of_date() }}
    group by kind_days.lead_id

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
