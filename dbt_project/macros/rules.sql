{#-
    Rule operators shared by the demographic rules and the segment definitions, so a rule means
    the same wherever it is written.

    Text operators compare case-insensitively: equals, not_equals, in (values separated by |),
    contains, regex (PostgreSQL, case-insensitive). Numeric operators read the attribute as a
    number and never match a value that is not one: gte, gt, lte, lt, between (inclusive,
    written low..high).
-#}

{% macro rule_matches(value, operator, rule_value) -%}
    case {{ operator }}
        when 'equals'
            then lower({{ value }}) = lower({{ rule_value }})
        when 'not_equals'
            then lower({{ value }}) <> lower({{ rule_value }})
        when 'in'
            then lower({{ value }})
                = any(string_to_array(lower({{ rule_value }}), '|'))
        when 'contains'
            then strpos(lower({{ value }}), lower({{ rule_value }})) > 0
        when 'regex'
            then {{ value }} ~* {{ rule_value }}
        when 'gte'
            then {{ as_number(value) }} >= {{ as_number(rule_value) }}
        when 'gt'
            then {{ as_number(value) }} > {{ as_number(rule_value) }}
        when 'lte'
            then {{ as_number(value) }} <= {{ as_number(rule_value) }}
        when 'lt'
            then {{ as_number(value) }} < {{ as_number(rule_value) }}
        when 'between'
            then {{ as_number(value) }} between
                {{ as_number("split_part(" ~ rule_value ~ ", '..', 1)") }}
                and {{ as_number("split_part(" ~ rule_value ~ ", '..', 2)") }}
        else false
    end
{%- endmacro %}

{#- A text value as a number, or null when it is not one. -#}
{% macro as_number(expression) -%}
    case
        when trim({{ expression }}) ~ '^-?[0-9]+(\.[0-9]+)?$'
            then cast(trim({{ expression }}) as numeric)
    end
{%- endmacro %}

{#- The attributes and operators rules may use (the seeds' accepted values). -#}
{% macro rule_attributes() -%}
    {{ return([
        'job_title', 'industry', 'company_size', 'company_employees', 'country',
        'email_domain', 'original_source',
    ]) }}
{%- endmacro %}

{% macro rule_operators() -%}
    {{ return([
        'equals', 'not_equals', 'in', 'contains', 'regex', 'gte', 'gt', 'lte', 'lt', 'between',
    ]) }}
{%- endmacro %}
