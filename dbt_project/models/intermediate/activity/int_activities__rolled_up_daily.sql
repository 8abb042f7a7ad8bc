{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='activity_date',
        on_schema_change='fail',
        indexes=[{'columns': ['activity_date']}, {'columns': ['last_loaded_at']}],
    )
}}
-- Activities counted per actor (Segment user / anonymous id, or email recipient), day, type
-- and page: the compact form scoring reads, so a run never rescans the full event history.
--
-- Incremental by day: a run recomputes, from the sources, every day that received rows
-- loaded since the last run (minus a look-back for loads that committed late) and replaces
-- those days whole. Late events, replays and interval re-loads therefore land exactly once.
-- The rollup holds facts only (no rules, no identities), so it stays valid when the ruleset
-- or the stitching changes; `dbt build --full-refresh` rebuilds it from scratch.

with

activities as (

    select * from {{ ref('int_activities__unioned') }}

),

{% if is_incremental() %}

watermark as (

    select
        coalesce(max(this_rollup.last_loaded_at), '-infinity')
        - interval '{{ var("rollup_lookback_minutes") }} minutes' as loaded_after
    from {{ this }} as this_rollup

),

touched_days as (

    select distinct activities.activity_date
    from activities
    where activities.loaded_at > (select watermark.loaded_after from watermark)

),

{% endif %}

to_roll_up as (

    select activities.*
    from activities
    {% if is_incremental() %}
        where
            activities.occurred_at
            >= (select min(touched_days.activity_date) from touched_days)
            and activities.activity_date in (
                select touched_days.activity_date from touched_days
            )
    {% endif %}

),

final as (

    select
        md5(
            concat_ws(
                '|',
                to_roll_up.source_system,
                to_roll_up.user_id,
                to_roll_up.anonymous_id,
                to_roll_up.email,
                to_roll_up.activity_date,
                to_roll_up.activity_type,
                to_roll_up.page_path
            )
        ) as rollup_id,
        to_roll_up.source_system,
        to_roll_up.user_id,
        to_roll_up.anonymous_id,
        to_roll_up.email,
        to_roll_up.activity_date,
        to_roll_up.activity_type,
        to_roll_up.page_path,
        cast(count(*) as integer) as activity_count,
        min(to_roll_up.activity_id) as sample_activity_id,
        min(to_roll_up.occurred_at) as first_occurred_at,
        max(to_roll_up.occurred_at) as last_occurred_at,
        max(to_roll_up.loaded_at) as last_loaded_at
    from to_roll_up
    group by
        to_roll_up.source_system,
        to_roll_up.user_id,
        to_roll_up.anonymous_id,
        to_roll_up.email,
        to_roll_up.activity_date,
        to_roll_up.activity_type,
        to_roll_up.page_path

)

select * from final
