{{ config(materialized='table') }}
-- Each lead's behavioural rule windows at the as-of date: per lead, scoring model, rule and
-- cap window, the first and last day, the activity count and a sample activity. From the
-- actors' state, except actors with activity after the as-of date, whose rows up to it are
-- replayed from the rollup; a lead's actors are added up per window.

with

lead_actors as (

    select * from {{ ref('int_lead_actors__as_of') }}
    where {{ is_reprojected('lead_id') }}

),

window_state as (

    select * from {{ ref('int_actor_rule_windows__state') }}

),

rollups as (

    select * from {{ ref('int_activities__rolled_up_daily') }}

),

activity_kinds as (

    select * from {{ ref('int_activity_kinds__categorized') }}

),

behavioral_rules as (

    {{ hashed_behavioral_rules() }}

),

matched as (

    {{ rule_kinds('activity_kinds', 'behavioral_rules') }}

),

replayed_rows as (

    select
        rollups.actor_id,
        rollups.activity_kind_id,
        rollups.activity_date,
        rollups.activity_count,
        rollups.sample_activity_id,
        rollups.changed_at
    from rollups
    where
        rollups.actor_id in (
            select lead_actors.actor_id
            from lead_actors
            where lead_actors.is_replayed
        )
        and rollups.activity_date <= {{ as_of_date() }}

),

actor_windows as (

    select
        window_state.actor_id,
        window_state.scoring_model_id,
        window_state.rule_id,
        window_state.window_start,
        window_state.first_activity_date,
        window_state.last_activity_date,
        window_state.sample_activity_id,
        window_state.activity_count
    from window_state
    where
        window_state.actor_id in (
            select lead_actors.actor_id
            from lead_actors
            where not lead_actors.is_replayed
        )

    union all

    select
        replayed.actor_id,
        replayed.scoring_model_id,
        replayed.rule_id,
        replayed.window_start,
        replayed.first_activity_date,
        replayed.last_activity_date,
        replayed.sample_activity_id,
        replayed.activity_count
    from ({{ actor_rule_windows('replayed_rows', 'matched') }}) as replayed

),

final as (

    select
        lead_actors.lead_id,
        actor_windows.scoring_model_id,
        actor_windows.rule_id,
        actor_windows.window_start,
        min(actor_windows.first_activity_date) as first_activity_date,
        max(actor_windows.last_activity_date) as last_activity_date,
        min(actor_windows.sample_activity_id) as sample_activity_id,
        cast(sum(actor_windows.activity_count) as integer) as activity_count
    from actor_windows
    inner join lead_actors
        on actor_windows.actor_id = lead_actors.actor_id
    group by
        lead_actors.lead_id,
        actor_windows.scoring_model_id,
        actor_windows.rule_id,
        actor_windows.window_start

)

select * from final
