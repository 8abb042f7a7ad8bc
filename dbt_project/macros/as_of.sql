{#-
    Point-in-time scoring. `as_of_date()` is the date scores are computed as of, and
    `as_of_cutoff()` the first instant after it: everything a model may use must have happened
    before the cutoff.

    The date is read by the warehouse when a statement runs, from the session setting
    `lead_scoring.as_of` (YYYY-MM-DD; unset or empty: today in UTC). The DAG, the backtests and
    `lead-scoring explain` set it through libpq's PGOPTIONS (`-c lead_scoring.as_of=2024-06-01`)
    or `set lead_scoring.as_of = ...`, so the compiled SQL is the same for every date: dbt's
    partial parsing holds from one run to the next, and the as-of views answer for whichever
    date the session asks (that is how past ledger lines are recomputed on demand).

    The var `as_of` still works (dbt unit tests pin their date with it; a by-hand
    `dbt build --vars '{as_of: ...}'` too) and wins over the setting; changing it re-parses.
-#}

{% macro as_of_date() -%}
    {%- set as_of = var('as_of', none) -%}
    {%- if as_of is none or as_of | string | trim == '' -%}
        {{ as_of_setting() }}
    {%- else -%}
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
    {%- endif -%}
{%- endmacro %}

{#-
    The session's as-of date. A plain expression, not a scalar subquery: PostgreSQL folds it
    when it estimates row counts, so plans are those of a literal date. Whoever sets the
    setting checks the date (`lead_scoring.config.as_of_options`); a value that is not a date
    fails the statement with PostgreSQL's own message naming it.
-#}
{% macro as_of_setting() -%}
    coalesce(
        cast(nullif(current_setting('lead_scoring.as_of', true), '') as date),
        cast(now() at time zone 'utc' as date)
    )
{%- endmacro %}

{% macro as_of_cutoff() -%}
    (cast({{ as_of_date() }} + 1 as timestamp) at time zone 'utc')
{%- endmacro %}

{#- The as-of cutoff as the score history stores it: UTC, without a time zone. -#}
{% macro history_cutoff() -%}
    cast({{ as_of_date() }} + 1 as timestamp)
{%- endmacro %}
