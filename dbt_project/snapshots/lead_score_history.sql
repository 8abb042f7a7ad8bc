{% snapshot lead_score_history %}
{{
    config(
        unique_key=['lead_id', 'scoring_model_id'],
        strategy='check',
        check_cols=[
            'total_score', 'band', 'fit_grade', 'is_mql', 'is_sql', 'ruleset_version',
        ],
        updated_at='valid_from_utc',
    )
}}
-- Score history as a type-2 dimension: a new version only when a lead's score, band, fit
-- grade, flags or ruleset change. Versions start at the score's as-of cutoff (scored_at),
-- not the wall clock (valid_from_utc, UTC, as dbt compares it with its own timezone-less
-- timestamps), so runs for consecutive as-of dates (daily runs, an ordered backfill) give
-- each version its true validity. Only the latest as-of date scored so far is
-- snapshotted: re-running or backfilling an older date leaves the history as it is (it
-- would otherwise open a version that starts before the current one).
select
    lead_id,
    scoring_model_id,
    as_of_date,
    total_score,
    band,
    fit_grade,
    is_mql,
    is_sql,
    top_reasons,
    ruleset_version,
    scored_at,
    cast(scored_at at time zone 'utc' as timestamp) as valid_from_utc
from {{ ref('fct_lead_scores') }}
where
    as_of_date = {{ as_of_date() }}
    and as_of_date >= (
        select max(all_scores.as_of_date) from {{ ref('fct_lead_scores') }} as all_scores
    )
{% endsnapshot %}
