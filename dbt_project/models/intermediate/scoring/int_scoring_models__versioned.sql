-- The ruleset version of each scoring model: a hash of every seed row that can change its
-- scores (the model row, its thresholds, rules, groups, bonuses and decay, and the shared
-- segment, page and activity definitions). Equal seeds give the same version, any edit a
-- new one; the version is stamped on every score, ledger line and CRM record.

with

scoring_models as (

    select * from {{ ref('scoring_models') }}

),

{% set per_model = [
    'score_thresholds', 'demographic_rules', 'behavioral_rules',
    'behavioral_rule_groups', 'engagement_bonus_rules', 'decay_rules',
] %}
{% set shared = ['lead_segments', 'page_categories', 'activity_types'] %}

{% for seed in per_model + shared %}
    {{ seed }} as (

        select * from {{ ref(seed) }}

    ),
{% endfor %}

fingerprints as (

    select
        scoring_models.scoring_model_id,
        'scoring_models:' || md5(cast(scoring_models.* as text)) as fingerprint
    from scoring_models

    {% for seed in per_model %}
        union all
        select
            {{ seed }}.scoring_model_id,
            '{{ seed }}:' || md5(cast({{ seed }}.* as text)) as fingerprint
        from {{ seed }}
    {% endfor %}

    {% for seed in shared %}
        union all
        select
            scoring_models.scoring_model_id,
            '{{ seed }}:' || md5(cast({{ seed }}.* as text)) as fingerprint
        from {{ seed }}
        cross join scoring_models
    {% endfor %}

),

versions as (

    select
        fingerprints.scoring_model_id,
        left(
            md5(string_agg(fingerprints.fingerprint, ',' order by fingerprints.fingerprint)),
            12
        ) as ruleset_version
    from fingerprints
    group by fingerprints.scoring_model_id

),

final as (

    select
        scoring_models.scoring_model_id,
        scoring_models.model_name,
        scoring_models.description,
        scoring_models.score_floor,
        scoring_models.score_ceiling,
        scoring_models.decay_floor,
        scoring_models.crm_property_prefix,
        versions.ruleset_version
    from scoring_models
    inner join versions
        on scoring_models.scoring_model_id = versions.scoring_model_id

)

select * from final
