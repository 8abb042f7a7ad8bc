{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='as_of_date',
        on_schema_change='fail',
        full_refresh=(none if var('rebuild_score_history', false) else false),
        indexes=[{'columns': ['as_of_date', 'scoring_model_id']}],
    )
}}
-- The daily trend BI reads, one row per as-of date x scoring model x segment x band: how many
-- leads, MQLs and SQLs, and the mean score. Written for every date a build scores, a
-- backfilled one included (re-running a date replaces its rows), from the scores as of that
-- date; the per-lead scores themselves are kept only as versions (lead_score_history). Its
-- newest date is also the date the score tables are current as of.

with

scores as (

    select * from {{ ref('int_lead_scores__as_of') }}

),

final as (

    select
        scores.as_of_date,
        scores.scoring_model_id,
        scores.segment,
        scores.band,
        scores.ruleset_version,
        cast(count(*) as integer) as lead_count,
        cast(count(*) filter (where scores.is_mql) as integer) as mql_count,
        cast(count(*) filter (where scores.is_sql) as integer) as sql_count,
        cast(sum(scores.total_score) as bigint) as total_score_sum,
        cast(avg(scores.total_score) as numeric(8, 2)) as mean_total_score
    from scores
    group by
        scores.as_of_date,
        scores.scoring_model_id,
        scores.segment,
        scores.band,
        scores.ruleset_version

)

select * from final
