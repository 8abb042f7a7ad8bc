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

{#-
    Make the room of the rows an incremental model just replaced reusable (a project post-hook
    outside the transaction: VACUUM cannot run in one). The projections and the ledger delete
    and re-insert the leads they rewrite; without it each run's dead rows stay on disk until
    autovacuum gets to them and the warehouse grows by the rows rewritten, not by the new ones.
    The visibility map keeps it cheap on the big append-mostly tables (the rollup).
-#}
{% macro vacuum_if_incremental() %}
    {%- if model.config.materialized == 'incremental' and is_incremental() -%}
        vacuum {{ this }}
    {%- endif -%}
{% endmacro %}
