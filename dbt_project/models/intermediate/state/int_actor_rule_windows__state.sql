{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['actor_id', 'scoring_model_id', 'rule_id'],
        on_schema_change='fail',
        indexes=[
            {'columns': ['actor_id']},
            {'columns': ['scoring_model_id', 'rule_id', 'rule_hash']},
            {'columns': ['changed_at']},
        ],
        post_hook="{{ delete_stale_rule_windows() }}",
    )
}}
-- Per actor, scoring model, behavioural rule and cap window: the window's first and last
-- day, activity count and a sample activity, for every window ever (a closed window never
-- changes). The behavioural lines cap and decay these at the as-of date.
-- Incremental: a run recounts the actors with rollup rows changed since the newest it has
-- seen (all their windows of every rule), and every actor for a rule whose hash is new (an
-- edited rule, or an edited channel mapping); rows of rules that changed or went are deleted
-- after.

with

rollups as (

    select * from {{ ref('int_activities__rolled_up_daily') }}

),

activity_kinds as (

    select * from {{ ref('int_activity_kinds__categorized') }}

),

behavioral_rules as (

    {{ hashed_behavioral_rules() }}

),

matched as (

    {{ rule_kinds('activity_kinds', 'behavioral_rules') }}

),

{% if is_incremental() %}

touched as (

    {{ touched_actors(ref('int_activities__rolled_up_daily')) }}

),

-- Rules that match some activity but have no windows under their hash yet.
recounted_rules as (

    select distinct
        matched.scoring_model_id,
        matched.rule_id
    from matched
    where not exists (
        select
        from {{ this }} as counted
        where
            counted.scoring_model_id = matched.scoring_model_id
            and counted.rule_id = matched.rule_id
            and counted.rule_hash = matched.rule_hash
    )

),

{% endif %}

actor_rows as (

    select
        rollups.actor_id,
        rollups.activity_kind_id,
        rollups.activity_date,
        rollups.activity_count,
        rollups.sample_activity_id,
        rollups.changed_at
    from rollups
    {% if is_incremental() %}
        where
            rollups.actor_id in (select touched.actor_id from touched)
            or rollups.activity_kind_id in (
                select matched.activity_kind_id
                from matched
                inner join recounted_rules
                    on
                        matched.scoring_model_id = recounted_rules.scoring_model_id
                        and matched.rule_id = recounted_rules.rule_id
            )
    {% endif %}

),

final as (

    {% if is_incremental() %}
        {{ actor_rule_windows('actor_rows', 'matched', where=
            "actor_rows.actor_id in (select touched.actor_id from touched)"
            ~ " or (matched.scoring_model_id, matched.rule_id) in"
            ~ " (select recounted_rules.scoring_model_id, recounted_rules.rule_id"
            ~ " from recounted_rules)") }}
    {% else %}
        {{ actor_rule_windows('actor_rows', 'matched') }}
    {% endif %}

)

select * from final
