-- A table, not a view: several models (and tests) read it; computed once per run.
{{ config(materialized='table') }}

-- What each kind of activity means: its channel, funnel stage (awareness / consideration /
-- decision), page category and product line, and whether it is engagement by the lead (a
-- delivered or bounced email is not). One row per activity type and page path seen, so the
-- page patterns are matched once per path, not once per event.

with

rollups as (

    select * from {{ ref('int_activities__rolled_up_daily') }}

),

activity_types as (

    select * from {{ ref('activity_types') }}

),

page_categories as (

    select * from {{ ref('page_categories') }}

),

kinds as (

    select distinct on (rollups.activity_type, rollups.page_path)
        rollups.source_system,
        rollups.activity_type,
        rollups.page_path
    from rollups
    order by
        rollups.activity_type asc,
        rollups.page_path asc,
        rollups.source_system asc

),

categorized as (

    select
        kinds.source_system,
        kinds.activity_type,
        kinds.page_path,
        page_category.page_category,
        page_category.funnel_stage as page_funnel_stage,
        page_category.product_line
    from kinds
    left join lateral (
        select
            page_categories.page_category,
            page_categories.funnel_stage,
            page_categories.product_line
        from page_categories
        where kinds.page_path ~* page_categories.path_pattern
        order by page_categories.priority asc
        limit 1
    ) as page_category on true

),

final as (

    select
        {{ activity_kind_id('categorized') }} as activity_kind_id,
        categorized.activity_type,
        categorized.page_path,
        coalesce(
            activity_types.channel,
            case when categorized.source_system = 'email' then 'email' else 'web' end
        ) as channel,
        coalesce(activity_types.funnel_stage, categorized.page_funnel_stage) as funnel_stage,
        categorized.page_category,
        categorized.product_line,
        coalesce(activity_types.is_engagement, categorized.source_system = 'web')
            as is_engagement
    from categorized
    left join activity_types
        on categorized.activity_type = activity_types.activity_type

)

select * from final
