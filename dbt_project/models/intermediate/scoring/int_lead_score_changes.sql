{{ config(materialized='table') }}
{%- set current = built_relation('fct_lead_scores', 'score_hash') -%}
{%- set history = built_relation('lead_score_history', 'score_hash') -%}
-- depends_on: {{ ref('int_lead_projections') }}
-- What this build changes in the score versions, one row per lead x scoring model that
-- changes (a few percent of them on a usual day): `new_version` (the score differs from the
-- current one, or the lead is new), `dropped` (the lead is no longer scored), `restored` (an
-- earlier build of this same date had opened a version that this build no longer finds: the
-- version before it is current again). A lead whose score is unchanged has no row, so the
-- history, the current scores and the ledger are written for the changes only. A build of a
-- date older than the newest one scored (a backfill) changes nothing: it has no rows.
-- MQL/SQL dates carry over from the version current before this date.

with

scores as (

    select * from {{ ref('int_lead_scores__as_of') }}

),

summary as (

    select * from {{ ref('fct_lead_score_summary') }}

),

built as (

    select max(summary.as_of_date) as newest_date from summary

),

todays_scores as (

    select scores.*
    from scores
    cross join built
    where scores.as_of_date >= built.newest_date

),

{% if current is not none and history is not none %}

    current_scores as (

        select
            current_scores.lead_id,
            current_scores.scoring_model_id,
            current_scores.as_of_date,
            current_scores.score_id,
            current_scores.score_hash,
            current_scores.mql_date,
            current_scores.sql_date
        from {{ current }} as current_scores
        cross join built
        where {{ as_of_date() }} >= built.newest_date

    ),

    replaced_today as (

        -- the version an earlier build of this date closed, where it opened a new one
        select
            history.lead_id,
            history.scoring_model_id,
            history.score_hash,
            history.mql_date,
            history.sql_date
        from {{ history }} as history
        inner join current_scores
            on
                history.lead_id = current_scores.lead_id
                and history.scoring_model_id = current_scores.scoring_model_id
        where
            current_scores.as_of_date = {{ as_of_date() }}
            and history.dbt_valid_to = {{ history_cutoff() }}

    ),

{% else %}

    current_scores as (

        select
            todays_scores.lead_id,
            todays_scores.scoring_model_id,
            todays_scores.as_of_date,
            todays_scores.score_id,
            todays_scores.score_hash,
            cast(null as date) as mql_date,
            cast(null as date) as sql_date
        from todays_scores
        where false

    ),

    replaced_today as (

        select
            current_scores.lead_id,
            current_scores.scoring_model_id,
            current_scores.score_hash,
            current_scores.mql_date,
            current_scores.sql_date
        from current_scores

    ),

{% endif %}

earlier_versions as (

    -- the version current just before this date
    select
        current_scores.lead_id,
        current_scores.scoring_model_id,
        current_scores.score_hash,
        current_scores.mql_date,
        current_scores.sql_date
    from current_scores
    where current_scores.as_of_date < {{ as_of_date() }}

    union all

    select
        replaced_today.lead_id,
        replaced_today.scoring_model_id,
        replaced_today.score_hash,
        replaced_today.mql_date,
        replaced_today.sql_date
    from replaced_today

),

compared as (

    select
        coalesce(todays_scores.lead_id, current_scores.lead_id) as lead_id,
        coalesce(todays_scores.scoring_model_id, current_scores.scoring_model_id)
            as scoring_model_id,
        todays_scores.score_id is not null as is_scored,
        current_scores.score_id is not null as is_current,
        coalesce(current_scores.as_of_date = {{ as_of_date() }}, false) as is_rebuild,
        (
            todays_scores.score_hash is not distinct from current_scores.score_hash
        ) as is_as_current,
        (
            todays_scores.score_hash is not distinct from earlier_versions.score_hash
        ) as is_as_earlier,
        earlier_versions.mql_date as earlier_mql_date,
        earlier_versions.sql_date as earlier_sql_date
    from todays_scores
    full outer join current_scores
        on
            todays_scores.lead_id = current_scores.lead_id
            and todays_scores.scoring_model_id = current_scores.scoring_model_id
    left join earlier_versions
        on
            coalesce(todays_scores.lead_id, current_scores.lead_id) = earlier_versions.lead_id
            and coalesce(todays_scores.scoring_model_id, current_scores.scoring_model_id)
            = earlier_versions.scoring_model_id

),

classified as (

    select
        compared.*,
        case
            when not compared.is_scored then 'dropped'
            when compared.is_rebuild and compared.is_as_current then null
            when compared.is_rebuild and compared.is_as_earlier then 'restored'
            when not compared.is_as_current then 'new_version'
        end as change_type
    from compared

),

final as (

    select
        classified.lead_id,
        classified.scoring_model_id,
        cast(classified.change_type as text) as change_type,
        {{ as_of_date() }} as as_of_date,
        todays_scores.score_id,
        todays_scores.email,
        todays_scores.segment,
        todays_scores.demographic_score,
        todays_scores.behavioral_score,
        todays_scores.negative_score,
        todays_scores.decay_score,
        todays_scores.raw_score,
        todays_scores.total_score,
        todays_scores.band,
        todays_scores.fit_score,
        todays_scores.fit_grade,
        todays_scores.is_mql,
        coalesce(
            classified.earlier_mql_date,
            case when todays_scores.is_mql then {{ as_of_date() }} end
        ) as mql_date,
        todays_scores.is_sql,
        coalesce(
            classified.earlier_sql_date,
            case when todays_scores.is_sql then {{ as_of_date() }} end
        ) as sql_date,
        todays_scores.has_decision_signal,
        todays_scores.top_reasons,
        todays_scores.ruleset_version,
        todays_scores.scored_at,
        todays_scores.score_hash
    from classified
    left join todays_scores
        on
            classified.lead_id = todays_scores.lead_id
            and classified.scoring_model_id = todays_scores.scoring_model_id
    where classified.change_type is not null

)

select * from final
