{#- Casts that turn malformed source values into null instead of failing the whole model. -#}

{% macro safe_timestamptz(expression) -%}
    case
        when {{ expression }}
            ~ '^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$'
            then cast({{ expression }} as timestamptz)
    end
{%- endmacro %}

{% macro to_snake_case(expression) -%}
    trim(both '_' from regexp_replace(lower({{ expression }}), '[^a-z0-9]+', '_', 'g'))
{%- endmacro %}
