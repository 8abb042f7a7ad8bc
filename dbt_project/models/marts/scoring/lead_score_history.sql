{#-
    The rows a build of the as-of date replaces, per lead and model in the batch: the version
    that was current at the cutoff (it is written again, closed or still open) and any version
    from an earlier build of the same date. Closed versions before the cutoff are never touched.
-#}
{%- set replaced -%}
    (DBT_INTERNAL_DEST.dbt_valid_to is null
    or DBT_INTERNAL_DEST.dbt_valid_to >= {{ history_cutoff() }})
{%- endset -%}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['lead_id', 'scoring_model_id'],
        incremental_predicates=[replaced],
        on_schema_change='fail',
        full_refresh=(none if var('rebuild_score_history', false) else false),
        indexes=[{'columns': ['lead_id', 'scoring_model_id', 'dbt_valid_from']}],
    )
}}
-- Type-2 history of each lead's score per scoring model: a version opens when the score,
-- band, fit grade, MQL/SQL flags or ruleset version change, valid from the as-of cutoff.
-- A version is keyed by lead, model and the cutoff it starts at, so however many times a day
-- is built (hourly runs, a rerun after a rules edit), the day has at most one version per
-- lead: each build of the newest as-of date replaces what an earlier build of that date
-- wrote, and compares with the version that was current before it. Building an older date
-- (a backfill) leaves the history alone: it would open a version before the current one.
-- A first build (or rebuild_score_history) derives the history from every scored day.

with

scores as (

    select * from {{ ref('fct_lead_scores') }}

),

{% if is_incremental() %}

newest_day as (

    select max(scores.as_of_date) as as_of_date from scores

),

todays_scores as (

    select scores.*
    from scores
    inner join newest_day on scores.as_of_date = newest_day.as_of_date
    where scores.as_of_date = {{ as_of_date() }}

),

earlier_versions as (

    -- the version current just before the cutoff (at most one per lead and model)
    select history.*
    from {{ this }} as history
    where
        history.dbt_valid_from < {{ history_cutoff() }}
        and (
            history.dbt_valid_to is null
            or history.dbt_valid_to >= {{ history_cutoff() }}
        )

),

compared as (

    select
        todays_scores.*,
        earlier_versions.dbt_valid_from as earlier_valid_from,
        earlier_versions.lead_id is null
        or (
            todays_scores.total_score,
            todays_scores.band,
            todays_scores.fit_grade,
            todays_scores.is_mql,
            todays_scores.is_sql,
            todays_scores.ruleset_version
        ) is distinct from (
            earlier_versions.total_score,
            earlier_versions.band,
            earlier_versions.fit_grade,
            earlier_versions.is_mql,
            earlier_versions.is_sql,
            earlier_versions.ruleset_version
        ) as is_changed
    from todays_scores
    left join earlier_versions
        on
            todays_scores.lead_id = earlier_versions.lead_id
            and todays_scores.scoring_model_id = earlier_versions.scoring_model_id

),

versions as (

    -- the earlier version again: closed at the cutoff if the score changed, else still open
    select
        earlier_versions.lead_id,
        earlier_versions.scoring_model_id,
        earlier_versions.as_of_date,
        earlier_versions.total_score,
        earlier_versions.band,
        earlier_versions.fit_grade,
        earlier_versions.is_mql,
        earlier_versions.is_sql,
        earlier_versions.top_reasons,
        earlier_versions.ruleset_version,
        earlier_versions.scored_at,
        earlier_versions.dbt_valid_from,
        case when compared.is_changed then {{ history_cutoff() }} end as dbt_valid_to
    from earlier_versions
    inner join compared
        on
            earlier_versions.lead_id = compared.lead_id
            and earlier_versions.scoring_model_id = compared.scoring_model_id

    union all

    -- the new version, from today's score
    select
        compared.lead_id,
        compared.scoring_model_id,
        compared.as_of_date,
        compared.total_score,
        compared.band,
        compared.fit_grade,
        compared.is_mql,
        compared.is_sql,
        compared.top_reasons,
        compared.ruleset_version,
        compared.scored_at,
        cast(compared.scored_at at time zone 'utc' as timestamp) as dbt_valid_from,
        cast(null as timestamp) as dbt_valid_to
    from compared
    where compared.is_changed

),

{% else %}

    ordered as (

        select
            scores.*,
            lag(
                (
                    scores.total_score,
                    scores.band,
                    scores.fit_grade,
                    scores.is_mql,
                    scores.is_sql,
                    scores.ruleset_version
                )
            ) over (
                partition by scores.lead_id, scores.scoring_model_id
                order by scores.as_of_date
            ) as previous_values,
            (
                scores.total_score,
                scores.band,
                scores.fit_grade,
                scores.is_mql,
                scores.is_sql,
                scores.ruleset_version
            ) as current_values
        from scores

    ),

    starts as (

        select
            ordered.lead_id,
            ordered.scoring_model_id,
            ordered.as_of_date,
            ordered.total_score,
            ordered.band,
            ordered.fit_grade,
            ordered.is_mql,
            ordered.is_sql,
            ordered.top_reasons,
            ordered.ruleset_version,
            ordered.scored_at,
            cast(ordered.scored_at at time zone 'utc' as timestamp) as dbt_valid_from
        from ordered
        where
            ordered.previous_values is null
            or ordered.previous_values is distinct from ordered.current_values

    ),

    versions as (

        select
            starts.*,
            lead(starts.dbt_valid_from) over (
                partition by starts.lead_id, starts.scoring_model_id
                order by starts.dbt_valid_from
            ) as dbt_valid_to
        from starts

    ),

{% endif %}

final as (

    select
        md5(
            versions.lead_id || '|' || versions.scoring_model_id || '|'
            || cast(versions.dbt_valid_from as text)
        ) as dbt_scd_id,
        versions.lead_id,
        versions.scoring_model_id,
        versions.as_of_date,
        versions.total_score,
        versions.band,
        versions.fit_grade,
        versions.is_mql,
        versions.is_sql,
        versions.top_reasons,
        versions.ruleset_version,
        versions.scored_at,
        versions.dbt_valid_from,
        versions.dbt_valid_to
    from versions

)

select * from final
