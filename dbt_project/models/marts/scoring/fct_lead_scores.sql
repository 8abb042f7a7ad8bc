{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='as_of_date',
        on_schema_change='fail',
    )
}}
-- Scores per lead x scoring model x as-of date. Re-running an as-of date replaces all of that
-- date's rows (delete+insert on as_of_date), so a retry or backfill never duplicates.

with

leads as (

    select * from {{ ref('int_leads__resolved_as_of') }}

),

lines as (

    select * from {{ ref('int_lead_score_lines__matched') }}

),

scoring_models as (

    select * from {{ ref('scoring_models') }}

),

demographic_rules as (

    select * from {{ ref('demographic_rules') }}

),

behavioral_rules as (

    select * from {{ ref('behavioral_rules') }}

),

-- The ruleset version: a hash of every rule and threshold of the model, so any change to the
-- seeds gives a new version and equal seeds always give the same one.
rule_fingerprints as (

    select
        scoring_models.scoring_model_id,
        md5(cast(scoring_models.* as text)) as fingerprint
    from scoring_models

    union all

    select
        demographic_rules.scoring_model_id,
        md5(cast(demographic_rules.* as text)) as fingerprint
    from demographic_rules

    union all

    select
        behavioral_rules.scoring_model_id,
        md5(cast(behavioral_rules.* as text)) as fingerprint
    from behavioral_rules

),

ruleset_versions as (

    select
        rule_fingerprints.scoring_model_id,
        left(
            md5(
                string_agg(
                    rule_fingerprints.fingerprint, ''
                    order by rule_fingerprints.fingerprint
                )
            ),
            12
        ) as ruleset_version
    from rule_fingerprints
    group by rule_fingerprints.scoring_model_id

),

components as (

    select
        lines.lead_id,
        lines.scoring_model_id,
        sum(lines.points) filter (where lines.component = 'demographic') as demographic_score,
        sum(lines.points) filter (where lines.component = 'behavioral') as behavioral_score,
        sum(lines.points) filter (where lines.component = 'negative') as negative_score
    from lines
    group by lines.lead_id, lines.scoring_model_id

),

top_reasons as (

    select distinct on (lines.lead_id, lines.scoring_model_id)
        lines.lead_id,
        lines.scoring_model_id,
        lines.description || ' (+' || lines.points || ')' as top_reason
    from lines
    where lines.points > 0
    order by
        lines.lead_id asc,
        lines.scoring_model_id asc,
        lines.points desc,
        lines.rule_id asc

),

scored as (

    select
        leads.lead_id,
        scoring_models.scoring_model_id,
        leads.email,
        coalesce(components.demographic_score, 0) as demographic_score,
        coalesce(components.behavioral_score, 0) as behavioral_score,
        coalesce(components.negative_score, 0) as negative_score,
        scoring_models.score_floor,
        scoring_models.score_ceiling,
        scoring_models.warm_threshold,
        scoring_models.hot_threshold,
        scoring_models.mql_threshold,
        top_reasons.top_reason,
        ruleset_versions.ruleset_version
    from leads
    cross join scoring_models
    left join components
        on
            leads.lead_id = components.lead_id
            and scoring_models.scoring_model_id = components.scoring_model_id
    left join top_reasons
        on
            leads.lead_id = top_reasons.lead_id
            and scoring_models.scoring_model_id = top_reasons.scoring_model_id
    inner join ruleset_versions
        on scoring_models.scoring_model_id = ruleset_versions.scoring_model_id

),

totals as (

    select
        scored.*,
        scored.demographic_score + scored.behavioral_score + scored.negative_score as raw_score,
        greatest(
            scored.score_floor,
            least(
                scored.score_ceiling,
                scored.demographic_score + scored.behavioral_score + scored.negative_score
            )
        ) as total_score
    from scored

),

final as (

    select
        cast(totals.lead_id as text) as lead_id,
        cast(totals.scoring_model_id as text) as scoring_model_id,
        {{ as_of_date() }} as as_of_date,
        cast(totals.email as text) as email,
        cast(totals.demographic_score as integer) as demographic_score,
        cast(totals.behavioral_score as integer) as behavioral_score,
        cast(totals.negative_score as integer) as negative_score,
        cast(totals.raw_score as integer) as raw_score,
        cast(totals.total_score as integer) as total_score,
        cast(
            case
                when totals.total_score >= totals.hot_threshold then 'hot'
                when totals.total_score >= totals.warm_threshold then 'warm'
                else 'cold'
            end as text
        ) as band,
        totals.total_score >= totals.mql_threshold as is_mql,
        cast(totals.top_reason as text) as top_reason,
        cast(totals.ruleset_version as text) as ruleset_version,
        cast('{{ run_started_at.isoformat() }}' as timestamptz) as scored_at
    from totals

)

select * from final
