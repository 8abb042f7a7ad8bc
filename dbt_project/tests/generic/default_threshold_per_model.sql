{#- Every scoring model has its default (segment `*`) thresholds row, and within each row
    the thresholds are ordered: warm < hot, mql <= sql. -#}
{% test default_threshold_per_model(model) %}

with

scoring_models as (

    select * from {{ ref('scoring_models') }}

),

thresholds as (

    select * from {{ model }}

),

final as (

    select
        scoring_models.scoring_model_id,
        'no default (*) thresholds' as problem
    from scoring_models
    left join thresholds
        on
            scoring_models.scoring_model_id = thresholds.scoring_model_id
            and thresholds.segment = '*'
    where thresholds.scoring_model_id is null

    union all

    select
        thresholds.scoring_model_id,
        'thresholds out of order for segment ' || thresholds.segment as problem
    from thresholds
    where
        thresholds.warm_threshold >= thresholds.hot_threshold
        or thresholds.mql_threshold > thresholds.sql_threshold

)

select * from final

{% endtest %}
