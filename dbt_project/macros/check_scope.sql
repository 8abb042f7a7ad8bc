{#-
    What a data test checks: the rows a run loaded or changed, or everything.

    A production run checks the rows it brought: tests on the models that hold every event
    ever loaded (sources, staging, the activity stream) look at the rows loaded in the last
    `recent_load_hours` hours, and tests on the score marts at the scores of the as-of date
    being built (the versions this build opened). A test says which by its `meta`:

        config:
          meta: {recent_rows: loaded_at}     # the load stamp column of the tested model
          meta: {scored_rows: as_of_date}    # the score date column

    The session setting `lead_scoring.check_scope` = `full` (libpq's PGOPTIONS
    `-c lead_scoring.check_scope=full`, as the DAG sets it on its weekly full check or when asked,
    `lead_scoring.runtime.dbt_tools.check_scope_options`) makes every such test check the whole
    table. It is read when the test runs, not when dbt parses, so switching it re-parses nothing.
    A test's own `where` still applies on top.
-#}

{% macro postgres__get_where_subquery(relation) -%}
    {%- set filters = [] -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- do filters.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    {%- set meta = config.get('meta', {}) or {} -%}
    {%- if meta.get('recent_rows') -%}
        {%- do filters.append(meta['recent_rows'] ~ ' >= ' ~ recent_load_bound()) -%}
    {%- endif -%}
    {%- if meta.get('scored_rows') -%}
        {%- do filters.append(
            '(' ~ full_check() ~ ' or ' ~ meta['scored_rows'] ~ ' = ' ~ as_of_date() ~ ')'
        ) -%}
    {%- endif -%}
    {%- if filters -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ filters | join(' and ') }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

{#- Whether this session checks everything (`lead_scoring.check_scope` = `full`). -#}
{% macro full_check() -%}
    coalesce(current_setting('lead_scoring.check_scope', true) = 'full', false)
{%- endmacro %}

{#-
    The oldest load a production test looks at. A stable expression, so the planner still
    reaches the rows through the load-time index; a full check starts at -infinity.
-#}
{% macro recent_load_bound() -%}
    (case
        when {{ full_check() }} then cast('-infinity' as timestamptz)
        else now() - interval '1 hour' * {{ var('recent_load_hours') }}
    end)
{%- endmacro %}
