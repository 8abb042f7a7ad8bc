-- Rule matching: one line per lead x scoring model x rule that applied, with how often it
-- applied and the points it earns after the rule's frequency cap. A lead's lines add up to
-- its score before the model's clamp.

with

leads as (

    select * from {{ ref('int_leads__resolved_as_of') }}

),

activities as (

    select * from {{ ref('int_lead_activities__unioned') }}

),

demographic_rules as (

    select * from {{ ref('demographic_rules') }}

),

behavioral_rules as (

    select * from {{ ref('behavioral_rules') }}

),

lead_attributes as (

    select
        leads.lead_id,
        attributes.attribute,
        attributes.attribute_value
    from leads
    cross join
        lateral (
            values
            ('job_title', leads.job_title),
            ('industry', leads.industry),
            ('company_size', leads.company_size),
            ('country', leads.country)
        ) as attributes (attribute, attribute_value)
    where attributes.attribute_value is not null

),

demographic_lines as (

    select
        lead_attributes.lead_id,
        demographic_rules.scoring_model_id,
        demographic_rules.rule_id,
        demographic_rules.component,
        demographic_rules.description,
        lead_attributes.attribute as matched_on,
        1 as occurrences,
        demographic_rules.points as points_per_occurrence,
        demographic_rules.points
    from lead_attributes
    inner join demographic_rules
        on
            lead_attributes.attribute = demographic_rules.attribute
            and case demographic_rules.operator
                when 'equals'
                    then lower(lead_attributes.attribute_value)
                        = lower(demographic_rules.rule_value)
                when 'in'
                    then lower(lead_attributes.attribute_value)
                        = any(string_to_array(lower(demographic_rules.rule_value), '|'))
                when 'contains'
                    then strpos(
                            lower(lead_attributes.attribute_value),
                            lower(demographic_rules.rule_value)
                        ) > 0
                when 'regex'
                    then lead_attributes.attribute_value ~* demographic_rules.rule_value
                else false
            end

),

behavioral_matches as (

    select
        activities.lead_id,
        behavioral_rules.scoring_model_id,
        behavioral_rules.rule_id,
        behavioral_rules.component,
        behavioral_rules.description,
        behavioral_rules.activity_type as matched_on,
        behavioral_rules.points as points_per_occurrence,
        behavioral_rules.max_occurrences,
        count(*) as occurrences
    from activities
    inner join behavioral_rules
        on
            activities.activity_type = behavioral_rules.activity_type
            and activities.channel = behavioral_rules.channel
            and (
                behavioral_rules.path_pattern is null
                or activities.page_path ~* behavioral_rules.path_pattern
            )
    group by
        activities.lead_id,
        behavioral_rules.scoring_model_id,
        behavioral_rules.rule_id,
        behavioral_rules.component,
        behavioral_rules.description,
        behavioral_rules.activity_type,
        behavioral_rules.points,
        behavioral_rules.max_occurrences

),

behavioral_lines as (

    select
        behavioral_matches.lead_id,
        behavioral_matches.scoring_model_id,
        behavioral_matches.rule_id,
        behavioral_matches.component,
        behavioral_matches.description,
        behavioral_matches.matched_on,
        cast(behavioral_matches.occurrences as integer) as occurrences,
        behavioral_matches.points_per_occurrence,
        behavioral_matches.points_per_occurrence
        * least(
            behavioral_matches.occurrences,
            coalesce(behavioral_matches.max_occurrences, behavioral_matches.occurrences)
        ) as points
    from behavioral_matches

),

final as (

    select * from demographic_lines
    union all
    select * from behavioral_lines

)

select * from final
