-- Demographic and firmographic fit: one line per lead, scoring model and attribute rule that
-- matches the lead's attributes as of the as-of date. Negative points express bad fit
-- (component `negative`).

with

lead_attributes as (

    select * from {{ ref('int_lead_attributes__unpivoted') }}
    where {{ is_reprojected('lead_id') }}

),

demographic_rules as (

    select * from {{ ref('demographic_rules') }}

),

final as (

    select
        lead_attributes.lead_id,
        demographic_rules.scoring_model_id,
        demographic_rules.rule_id,
        'demographic' as rule_type,
        demographic_rules.component,
        cast(null as text) as rule_group,
        demographic_rules.description,
        'attribute' as source_type,
        left(
            lead_attributes.attribute || ' = ' || lead_attributes.attribute_value, 200
        ) as source_ref,
        cast(null as date) as window_start,
        cast(null as date) as window_end,
        cast(null as text) as sample_activity_id,
        cast(null as integer) as activity_count,
        cast(null as integer) as counted_count,
        demographic_rules.points as raw_points,
        demographic_rules.points as points_after_caps,
        0 as decay_points,
        demographic_rules.points,
        cast(null as date) as changes_on
    from lead_attributes
    inner join demographic_rules
        on
            lead_attributes.attribute = demographic_rules.attribute
            and coalesce(
                {{ rule_matches(
                    'lead_attributes.attribute_value',
                    'demographic_rules.operator',
                    'demographic_rules.rule_value'
                ) }},
                false
            )

)

select * from final
