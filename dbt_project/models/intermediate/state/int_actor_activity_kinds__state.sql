{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='actor_id',
        on_schema_change='fail',
        indexes=[{'columns': ['actor_id']}, {'columns': ['changed_at']}],
    )
}}
-- Per actor and activity kind (a type and a page): first and last day, count and newest
-- change; emails delivered since the actor's last open keep their day (`unopened_on`). This
-- is what decay, the SQL decision signal and the lead profile read, instead of every day of
-- activity. Incremental: a run recomputes the actors with rollup rows changed since the
-- newest it has seen, from all their rows, and replaces their rows whole.

with

rollups as (

    select * from {{ ref('int_activities__rolled_up_daily') }}

),

{% if is_incremental() %}

touched as (

    {{ touched_actors(ref('int_activities__rolled_up_daily')) }}

),

{% endif %}

actor_rows as (

    select
        rollups.actor_id,
        rollups.activity_kind_id,
        rollups.activity_type,
        rollups.activity_date,
        rollups.activity_count,
        rollups.changed_at
    from rollups
    {% if is_incremental() %}
        where rollups.actor_id in (select touched.actor_id from touched)
    {% endif %}

),

final as (

    {{ actor_kind_totals('actor_rows') }}

)

select * from final
