{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='actor_id',
        on_schema_change='fail',
        indexes=[{'columns': ['actor_id'], 'unique': true}, {'columns': ['changed_at']}],
    )
}}
-- Every actor in the activity (a Segment user / anonymous id pair, or an email recipient):
-- its ids, its first and last day of activity and its newest change. The as-of models tie
-- actors to leads through these ids and replay, from the rollup, the few actors with
-- activity after the as-of date. Incremental: a run recomputes the actors with rollup rows
-- changed since the newest it has seen.

with

rollups as (

    select * from {{ ref('int_activities__rolled_up_daily') }}

),

{% if is_incremental() %}

touched as (

    {{ touched_actors(ref('int_activities__rolled_up_daily')) }}

),

{% endif %}

final as (

    select
        rollups.actor_id,
        rollups.source_system,
        rollups.user_id,
        rollups.anonymous_id,
        rollups.email,
        min(rollups.activity_date) as first_activity_date,
        max(rollups.activity_date) as last_activity_date,
        max(rollups.changed_at) as changed_at
    from rollups
    {% if is_incremental() %}
        where rollups.actor_id in (select touched.actor_id from touched)
    {% endif %}
    group by
        rollups.actor_id,
        rollups.source_system,
        rollups.user_id,
        rollups.anonymous_id,
        rollups.email

)

select * from final
