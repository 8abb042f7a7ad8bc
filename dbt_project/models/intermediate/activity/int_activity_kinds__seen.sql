{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='activity_kind_id',
        on_schema_change='fail',
        indexes=[{'columns': ['activity_kind_id'], 'unique': true}],
    )
}}
-- Every kind of activity (a type and a page) the rollup holds, with its source: what
-- int_activity_kinds__categorized classifies. Incremental: a run reads only the rollup rows
-- changed since the newest it has seen (finding the few dozen kinds in every rollup row
-- took a scan of the whole rollup each run, 7-10 s at 100k contacts); a kind seen again
-- keeps its first source in alphabetical order, as a full build gives.

with

changed as (

    select
        rollups.activity_kind_id,
        rollups.source_system,
        rollups.activity_type,
        rollups.page_path,
        rollups.changed_at
    from {{ ref('int_activities__rolled_up_daily') }} as rollups
    {% if is_incremental() %}
        where rollups.changed_at > {{ rollup_changed_after() }}
    {% endif %}

),

seen as (

    select * from changed

    {% if is_incremental() %}

        union all

        select
            known.activity_kind_id,
            known.source_system,
            known.activity_type,
            known.page_path,
            known.changed_at
        from {{ this }} as known
        where known.activity_kind_id in (select changed.activity_kind_id from changed)

    {% endif %}

),

final as (

    select
        seen.activity_kind_id,
        min(seen.source_system) as source_system,
        seen.activity_type,
        seen.page_path,
        max(seen.changed_at) as changed_at
    from seen
    group by
        seen.activity_kind_id,
        seen.activity_type,
        seen.page_path

)

select * from final
