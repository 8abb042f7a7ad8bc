{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['lead_id', 'scoring_model_id'],
        on_schema_change='fail',
        full_refresh=(none if var('rebuild_score_history', false) else false),
        indexes=[
            {'columns': ['lead_id', 'scoring_model_id'], 'unique': true},
            {'columns': ['as_of_date']},
        ],
        pre_hook=["{{ delete_changed_scores() }}"],
    )
}}
-- depends_on: {{ ref('int_lead_score_changes') }}
-- The current scores: one row per lead x scoring model, the version of lead_score_history that
-- is open (its components, clamped total, band and fit grade, MQL/SQL flags with the dates the
-- lead first reached them, top reasons for the CRM, ruleset version). `as_of_date` is the date
-- this version was first scored on: the score has been the same on every date since, up to
-- the newest date the summary holds. A build rewrites only the rows int_lead_score_changes
-- lists (the leads no longer scored go); a backfill of an older date leaves it alone.
-- A --full-refresh run leaves it alone too (var rebuild_score_history: true rebuilds it from
-- the history).

with

history as (

    select * from {{ ref('lead_score_history') }}

),

{% if is_incremental() %}

changes as (

    select * from {{ ref('int_lead_score_changes') }}

),

current_versions as (

    select history.*
    from history
    inner join changes
        on
            history.lead_id = changes.lead_id
            and history.scoring_model_id = changes.scoring_model_id
    where history.dbt_valid_to is null and changes.change_type <> 'dropped'

),

{% else %}

    current_versions as (

        select history.*
        from history
        where history.dbt_valid_to is null

    ),

{% endif %}

final as (

    select {{ score_version_select('current_versions') }}
    from current_versions

)

select * from final
