{#-
    The rows a build of the as-of date replaces, per lead and model it changes: the version that
    was current at the cutoff (it is written again, closed or still open) and any version from
    an earlier build of the same date. Closed versions before the cutoff are never touched.
-#}
{%- set replaced -%}
    (DBT_INTERNAL_DEST.dbt_valid_to is null
    or DBT_INTERNAL_DEST.dbt_valid_to >= {{ history_cutoff() }})
{%- endset -%}
{%- set legacy = built_relation('fct_lead_scores') if not is_incremental() else none -%}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['lead_id', 'scoring_model_id'],
        incremental_predicates=[replaced],
        on_schema_change='fail',
        full_refresh=(none if var('rebuild_score_history', false) else false),
        indexes=[{'columns': ['lead_id', 'scoring_model_id', 'dbt_valid_from']}],
        post_hook=[
            "delete from {{ this }} as history using {{ ref('int_lead_score_changes') }} as changes
            where changes.change_type = 'dropped' and history.lead_id = changes.lead_id
            and history.scoring_model_id = changes.scoring_model_id
            and history.dbt_valid_from >= {{ history_cutoff() }}",
        ],
    )
}}
-- depends_on: {{ ref('int_lead_score_changes') }}
-- Every version of each lead's score per scoring model: a version opens when anything the
-- score shows changes (components, total, band, fit grade, MQL/SQL flags, reasons, segment,
-- ruleset version; see score_hash()), valid from the as-of cutoff, and closes when the next
-- one opens or the lead is no longer scored. It is the scores' only history: the score of any
-- past date D is the version with dbt_valid_from <= D + 1 < coalesce(dbt_valid_to, infinity)
-- (macro lead_scores_as_of). A build writes only the leads int_lead_score_changes lists; however
-- many times a day is built, the day has at most one version per lead (each build of the
-- newest date replaces what an earlier build of that date wrote). Building an older date (a
-- backfill) leaves it alone. A first build (or rebuild_score_history) starts from the current
-- scores table when there is one (the daily score rows of earlier releases included), else
-- from the day's scores.

with

{% if is_incremental() %}

changes as (

    select * from {{ ref('int_lead_score_changes') }}

),

earlier_versions as (

    -- the version current just before the cutoff (at most one per lead and model)
    select
        {{ score_version_select('history') }},
        history.dbt_valid_from,
        changes.change_type
    from {{ this }} as history
    inner join changes
        on
            history.lead_id = changes.lead_id
            and history.scoring_model_id = changes.scoring_model_id
    where
        history.dbt_valid_from < {{ history_cutoff() }}
        and (
            history.dbt_valid_to is null
            or history.dbt_valid_to >= {{ history_cutoff() }}
        )

),

versions as (

    -- the earlier version again: closed at the cutoff, or open again when it is restored
    select
        {{ score_version_select('earlier_versions') }},
        earlier_versions.dbt_valid_from,
        case
            when earlier_versions.change_type <> 'restored' then {{ history_cutoff() }}
        end as dbt_valid_to
    from earlier_versions

    union all

    -- the new version
    select
        {{ score_version_select('changes') }},
        {{ history_cutoff() }} as dbt_valid_from,
        cast(null as timestamp) as dbt_valid_to
    from changes
    where changes.change_type = 'new_version'

),

{% else %}

    scores as (

        select * from {{ ref('int_lead_scores__as_of') }}

    ),

    {% if legacy is not none %}

        legacy_rows as (

            select
                {%- for column in score_version_columns() if column != 'score_hash' %}
                    legacy.{{ column }},
                {%- endfor %}
                {{ score_hash('legacy') }} as score_hash
            from {{ legacy }} as legacy
            where legacy.as_of_date < {{ as_of_date() }}

        ),

    {% else %}

        legacy_rows as (

            select
                {%- set dates = ['mql_date', 'sql_date'] %}
                {%- for column in score_version_columns() if column not in dates %}
                    scores.{{ column }},
                {%- endfor %}
                cast(null as date) as mql_date,
                cast(null as date) as sql_date
            from scores
            where false

        ),

    {% endif %}

    latest_legacy as (

        select distinct on (legacy_rows.lead_id, legacy_rows.scoring_model_id)
            legacy_rows.lead_id,
            legacy_rows.scoring_model_id,
            legacy_rows.mql_date,
            legacy_rows.sql_date
        from legacy_rows
        order by
            legacy_rows.lead_id asc,
            legacy_rows.scoring_model_id asc,
            legacy_rows.as_of_date desc

    ),

    dated_scores as (

        select
            scores.*,
            coalesce(
                latest_legacy.mql_date,
                case when scores.is_mql then scores.as_of_date end
            ) as mql_date,
            coalesce(
                latest_legacy.sql_date,
                case when scores.is_sql then scores.as_of_date end
            ) as sql_date
        from scores
        left join latest_legacy
            on
                scores.lead_id = latest_legacy.lead_id
                and scores.scoring_model_id = latest_legacy.scoring_model_id

    ),

    daily as (

        select {{ score_version_select('legacy_rows') }}
        from legacy_rows

        union all

        select {{ score_version_select('dated_scores') }}
        from dated_scores

    ),

    ordered as (

        select
            daily.*,
            lag(daily.score_hash) over (
                partition by daily.lead_id, daily.scoring_model_id
                order by daily.as_of_date
            ) as previous_hash,
            max(daily.as_of_date) over (
                partition by daily.lead_id, daily.scoring_model_id
            ) as last_date,
            max(daily.as_of_date) over () as newest_date
        from daily

    ),

    starts as (

        select
            ordered.*,
            cast(ordered.as_of_date + 1 as timestamp) as dbt_valid_from
        from ordered
        where ordered.previous_hash is distinct from ordered.score_hash

    ),

    versions as (

        select
            {{ score_version_select('starts') }},
            starts.dbt_valid_from,
            coalesce(
                lead(starts.dbt_valid_from) over (
                    partition by starts.lead_id, starts.scoring_model_id
                    order by starts.dbt_valid_from
                ),
                -- a lead the daily rows stop scoring before their newest date: closed the
                -- day after its last score
                case
                    when starts.last_date < starts.newest_date
                        then cast(starts.last_date + 2 as timestamp)
                end
            ) as dbt_valid_to
        from starts

    ),

{% endif %}

final as (

    select
        {{ score_version_select('versions') }},
        versions.dbt_valid_from,
        versions.dbt_valid_to
    from versions

)

select * from final
