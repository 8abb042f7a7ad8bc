{#-
    Refresh the planner's statistics on a table a model just built. PostgreSQL's autovacuum
    analyzes in its own time; until then a freshly inserted as-of date looks empty to the
    planner, which then picks nested loops that turn seconds into minutes.
-#}
{% macro analyze_if_table() %}
    {%- if model.config.materialized in ('table', 'incremental') -%}
        analyze {{ this }}
    {%- endif -%}
{% endmacro %}
