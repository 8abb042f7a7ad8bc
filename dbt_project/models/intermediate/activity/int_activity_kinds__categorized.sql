-- A table, not a view: several models (and tests) read it; computed once per run.
{{ config(materialized='table') }}

-- What each kind of activity means: its channel, funnel stage (awareness / consideration /
-- decision), page category and product line, and whether it is engagement by the lead (a
-- delivered or bounced email is not). One row per activity type and page path seen
-- (int_activity_kinds__seen), so the page patterns are matched once per path, not once per
-- event; rebuilt each run, so an edited seed applies to every kind.

with

kinds as (

    select * from {{ ref('int_activity_kinds__seen') }}

),

activity_types as (

    select * from {{ ref('activity_types') }}

),

page_categories as (

    select * from {{ ref('page_categories') }}

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
