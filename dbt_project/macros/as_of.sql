{#-
    Point-in-time scoring. `as_of_date()` is the date scores are computed as of (the var `as_of`,
    YYYY-MM-DD, not after the run's start date in UTC, which is the default), and `as_of_cutoff()` the first instant after
    it: everything a model may use must have happened before the cutoff.
-#}

{% macro as_of_date() -%}
    {%- set as_of = var('as_of', none) -%}
    {%- if as_of is none or as_of | string | trim == '' -%}
        {%- set as_of = run_started_at.strftime('%Y-%m-%d') -%}
    {%- endif -%}
    {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', as_of | string) -%}
        {{ exceptions.raise_compiler_error(
            "var 'as_of' must be a date like 2024-06-01, got '" ~ as_of ~ "'"
        ) }}
    {%- endif -%}
    {%- if (as_of | string) > run_started_at.strftime('%Y-%m-%d') -%}
        {{ exceptions.raise_compiler_error(
            "var 'as_of' is " ~ as_of ~ ", after today (" ~ run_started_at.strftime('%Y-%m-%d')
            ~ ", UTC): a score cannot be computed as of a day that has not happened"
        ) }}
    {%- endif -%}
    cast('{{ as_of }}' as date)
{%- endmacro %}

{% macro as_of_cutoff() -%}
    (cast({{ as_of_date() }} + 1 as timestamp) at time zone 'utc')
{%- endmacro %}

{#- The as-of cutoff as the score history stores it: UTC, without a time zone. -#}
{% macro history_cutoff() -%}
    cast({{ as_of_date() }} + 1 as timestamp)
{%- endmacro %}
