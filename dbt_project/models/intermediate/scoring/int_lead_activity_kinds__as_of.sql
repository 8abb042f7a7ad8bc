{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['lead_id']}],
        pre_hook=["{{ delete_reprojected() }}"],
    )
}}
-- Each lead's activity at the as-of date per activity kind (a type and a page): first and
-- last day, count, and the days of emails delivered since the last open. What decay, the
-- SQL decision signal and the lead profile read. From the actors' state, except actors with
-- activity after the as-of date, whose rows up to it are replayed from the rollup.
-- Incremental: a build writes the leads it projects (int_leads__reprojected); every other
-- lead's rows are the same at this as-of date (macros/projection.sql).

with

lead_actors as (

    select * from {{ ref('int_lead_actors__as_of') }}
    where {{ is_reprojected('lead_id') }}

),

kind_state as (

    select * from {{ ref('int_actor_activity_kinds__state') }}

),

rollups as (

    select * from {{ ref('int_activities__rolled_up_daily') }}

),

activity_kinds as (

    select * from {{ ref('int_activity_kinds__categorized') }}

),

replayed_rows as (

    select
        rollups.actor_id,
        rollups.activity_kind_id,
        rollups.activity_type,
        rollups.activity_date,
        rollups.activity_count,
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

actor_totals as (

    select
        kind_state.actor_id,
        kind_state.activity_kind_id,
        kind_state.unopened_on,
        kind_state.first_activity_date,
        kind_state.last_activity_date,
        kind_state.activity_count
    from kind_state
    where
        kind_state.actor_id in (
            select lead_actors.actor_id
            from lead_actors
            where not lead_actors.is_replayed
        )

    union all

    select
        replayed.actor_id,
        replayed.activity_kind_id,
        replayed.unopened_on,
        replayed.first_activity_date,
        replayed.last_activity_date,
        replayed.activity_count
    from ({{ actor_kind_totals('replayed_rows') }}) as replayed

),

lead_totals as (

    select
        lead_actors.lead_id,
        actor_totals.activity_kind_id,
        actor_totals.unopened_on,
        min(actor_totals.first_activity_date) as first_activity_date,
        max(actor_totals.last_activity_date) as last_activity_date,
        cast(sum(actor_totals.activity_count) as integer) as activity_count
    from actor_totals
    inner join lead_actors
        on actor_totals.actor_id = lead_actors.actor_id
    group by
        lead_actors.lead_id,
        actor_totals.activity_kind_id,
        actor_totals.unopened_on

),

final as (

    select
        lead_totals.lead_id,
        lead_totals.activity_kind_id,
        activity_kinds.channel,
        activity_kinds.activity_type,
        activity_kinds.funnel_stage,
        activity_kinds.page_path,
        activity_kinds.page_category,
        activity_kinds.product_line,
        activity_kinds.is_engagement,
        lead_totals.unopened_on,
        lead_totals.first_activity_date,
        lead_totals.last_activity_date,
        lead_totals.activity_count
    from lead_totals
    inner join activity_kinds
        on lead_totals.activity_kind_id = activity_kinds.activity_kind_id

)

select * from final
