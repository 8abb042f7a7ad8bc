{{ config(materialized='table') }}
{%- set stored = built_relation('int_lead_projections') -%}
-- depends_on: {{ ref('int_activity_actors__state') }}
-- The leads this build projects again (macros/projection.sql): every lead on a first build,
-- a --full-refresh, a rules edit or a backfill of an earlier date; otherwise the leads whose
-- inputs changed since their last projection - the lead row (attributes, lifecycle, existence)
-- or the actors tied to it (`fingerprint`), an actor's activity (state changed since, or
-- activity after the date the lead was projected as of, or after this as-of date) - and the
-- leads whose projection said it may change by this date (`changes_on`). A lead no longer
-- scored is listed with is_scored = false: its projections are deleted. `reason` says why,
-- the first that applies.

with

leads as (

    select * from {{ ref('int_leads__resolved_as_of') }}

),

lead_actors as (

    select * from {{ ref('int_lead_actors__as_of') }}

),

scoring_models as (

    select * from {{ ref('int_scoring_models__versioned') }}

),

actor_sets as (

    select
        lead_actors.lead_id,
        string_agg(
            lead_actors.actor_id || case when lead_actors.is_replayed then '*' else '' end,
            ',' order by lead_actors.actor_id
        ) as actor_set
    from lead_actors
    group by lead_actors.lead_id

),

fingerprints as (

    select
        leads.lead_id,
        md5(cast(leads.* as text) || '|' || coalesce(actor_sets.actor_set, '')) as fingerprint
    from leads
    left join actor_sets
        on leads.lead_id = actor_sets.lead_id

),

rules as (

    select
        string_agg(
            scoring_models.scoring_model_id || ':' || scoring_models.ruleset_version,
            ',' order by scoring_models.scoring_model_id
        ) as rules_version
    from scoring_models

),

{% if stored is none or flags.FULL_REFRESH %}

    final as (

        select
            fingerprints.lead_id,
            true as is_scored,
            fingerprints.fingerprint,
            rules.rules_version,
            'first' as reason
        from fingerprints
        cross join rules

    )

{% else %}

    stored as (

        select * from {{ stored }}

    ),

    actors as (

        select * from {{ ref('int_activity_actors__state') }}

    ),

    -- actors whose state changed after the newest the projections had seen
    changed_actors as (

        select actors.actor_id
        from actors
        where actors.changed_at > (select max(stored.state_changed_at) from stored)

    ),

    active_leads as (

        select lead_actors.lead_id
        from lead_actors
        where lead_actors.actor_id in (select changed_actors.actor_id from changed_actors)

        union

        select lead_actors.lead_id
        from lead_actors
        inner join stored
            on lead_actors.lead_id = stored.lead_id
        where
            lead_actors.is_replayed
            or lead_actors.last_activity_date > stored.projected_as_of

    ),

    compared as (

        select
            coalesce(fingerprints.lead_id, stored.lead_id) as lead_id,
            fingerprints.lead_id is not null as is_scored,
            fingerprints.fingerprint,
            rules.rules_version,
            case
                when {{ project_all() }} then 'all'
                when fingerprints.lead_id is null then 'gone'
                when stored.lead_id is null then 'new'
                when stored.rules_version <> rules.rules_version then 'rules'
                when stored.projected_as_of > {{ as_of_date() }} then 'backfill'
                when stored.fingerprint <> fingerprints.fingerprint then 'lead'
                when active_leads.lead_id is not null then 'activity'
                when stored.changes_on <= {{ as_of_date() }} then 'time'
            end as reason
        from fingerprints
        full outer join stored
            on fingerprints.lead_id = stored.lead_id
        cross join rules
        left join active_leads
            on fingerprints.lead_id = active_leads.lead_id

    ),

    final as (

        select
            compared.lead_id,
            compared.is_scored,
            compared.fingerprint,
            compared.rules_version,
            compared.reason
        from compared
        where compared.reason is not null

    )

{% endif %}

select * from final
