{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='activity_date',
        on_schema_change='fail',
        indexes=[
            {'columns': ['activity_date']},
            {'columns': ['last_loaded_at']},
            {'columns': ['changed_at']},
            {'columns': ['actor_id']},
        ],
    )
}}
-- Activities counted per actor (Segment user / anonymous id, or email recipient), day, type
-- and page: the compact form scoring reads, so a run never rescans the full event history.
--
-- Incremental by day: a run recomputes, from the sources, every day that received rows
-- loaded since the last run (minus a look-back for loads that committed late) and replaces
-- those days whole. Late events, replays and interval re-loads therefore land exactly once.
-- A row re-counted to the same facts keeps its `changed_at`: the activity state reads the
-- rows changed since its own newest, so it recomputes only the actors whose counts moved
-- (not those the look-back re-read).
-- The rollup holds facts only (no rules, no identities), so it stays valid when the ruleset
-- or the stitching changes; `dbt build --full-refresh` rebuilds it from scratch.

{#-
    The first touched day as a literal, read before the build: a bound the planner knows lets
    it reach the events through the raw tables' event-time indexes (a bound computed inside
    the query is estimated at a third of the table and read by a full scan).
-#}
{%- set first_touched_day = 'infinity' -%}
{%- if is_incremental() and execute -%}
    {%- set touched = run_query(
        "select coalesce(cast(min(activity_date) as text), 'infinity') from "
        ~ ref('int_activities__unioned')
        ~ " where loaded_at > (select coalesce(max(last_loaded_at), '-infinity')"
        ~ " - interval '" ~ var('rollup_lookback_minutes') ~ " minutes' from " ~ this ~ ")"
    ) -%}
    {%- set first_touched_day = touched.columns[0].values()[0] -%}
{%- endif %}

with

{% if is_incremental() %}

watermark as (

    select
        coalesce(max(this_rollup.last_loaded_at), '-infinity')
        - interval '{{ var("rollup_lookback_minutes") }} minutes' as loaded_after
    from {{ this }} as this_rollup

),

-- Its own import, not a second read of `activities`: a CTE read twice is materialized whole,
-- which would compute every activity ever loaded; read once, the load-time filter reaches the
-- raw tables' indexes.
newly_loaded as (

    select * from {{ ref('int_activities__unioned') }}
    where loaded_at > (select watermark.loaded_after from watermark)

),

touched_days as (

    select distinct newly_loaded.activity_date
    from newly_loaded

),

{% endif %}

activities as (

    select * from {{ ref('int_activities__unioned') }}

),

to_roll_up as (

    select activities.*
    from activities
    {% if is_incremental() %}
        where
            activities.occurred_at
            >= cast('{{ first_touched_day }}' as timestamp) at time zone 'utc'
            and activities.activity_date in (
                select touched_days.activity_date from touched_days
            )
    {% endif %}

),

rolled_up as (

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
        {{ actor_id('to_roll_up') }} as actor_id,
        {{ activity_kind_id('to_roll_up') }} as activity_kind_id,
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

),

{% if is_incremental() %}

-- The touched days' rows as the last run left them, to tell which rows changed.
previous as (

    select
        this_rollup.rollup_id,
        this_rollup.activity_count,
        this_rollup.sample_activity_id,
        this_rollup.first_occurred_at,
        this_rollup.last_occurred_at,
        this_rollup.changed_at
    from {{ this }} as this_rollup
    where
        this_rollup.activity_date >= cast('{{ first_touched_day }}' as date)
        and this_rollup.activity_date in (
            select touched_days.activity_date from touched_days
        )

),

{% endif %}

final as (

    select
        rolled_up.*,
        {% if is_incremental() %}
            case
                when
                    previous.activity_count = rolled_up.activity_count
                    and previous.sample_activity_id = rolled_up.sample_activity_id
                    and previous.first_occurred_at = rolled_up.first_occurred_at
                    and previous.last_occurred_at = rolled_up.last_occurred_at
                    then previous.changed_at
                else now()
            end as changed_at
        {% else %}
            now() as changed_at
        {% endif %}
    from rolled_up
    {% if is_incremental() %}
        left join previous
            on rolled_up.rollup_id = previous.rollup_id
    {% endif %}

)

select * from final
