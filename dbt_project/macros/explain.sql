{#-
    The ledger lines of any past date, recomputed on demand. The project keeps only the current
    lines (fct_lead_score_ledger); every model between the activity state and the assembled
    lines reads its as-of date from the session (macros/as_of.sql), so the same SQL scores any
    date. At the end of each build that built them, `install_explain_function` inlines those
    models, as compiled in that build, into one SQL function in the marts schema:

        select * from lead_scoring_marts.explain_lead_score('1234', date '2026-05-01');
        select * from lead_scoring_marts.explain_lead_score('1234', null, 'default');

    (lead, as-of date - default today, UTC -, scoring model - default every one; a null lead
    explains every lead), one row per line, the columns of int_lead_score_lines__assembled. BI
    tools call it like a table; `lead-scoring explain` and `dbt run-operation explain_lead`
    print it. It reads the warehouse as it is now: a late event dated on or before that day,
    loaded after the day was scored, is in the recomputed lines and not in the stored score, and
    the rules are today's (the CLI says so when the version differs).
-#}

{% macro install_explain_function(results) %}
    {%- if not execute or var('as_of', none) is not none -%}
        {{ return('') }}
    {%- endif -%}
    {%- set target_id = 'model.' ~ project_name ~ '.int_lead_score_lines__assembled' -%}
    {%- set compiled = {} -%}
    {%- for result in results -%}
        {%- if result.node.resource_type == 'model' and result.status == 'success' -%}
            {%- do compiled.update({result.node.unique_id: result.node.compiled_code}) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if target_id not in compiled -%}
        {{ return('') }}
    {%- endif -%}
    {%- set dated_macros = [] -%}
    {%- for name in ('as_of_date', 'as_of_cutoff', 'history_cutoff', 'as_of_setting') -%}
        {%- do dated_macros.append('macro.' ~ project_name ~ '.' ~ name) -%}
    {%- endfor -%}
    {#- the models the assembled lines are built from (a list that grows as it is walked) -#}
    {%- set chain = [target_id] -%}
    {%- for unique_id in chain -%}
        {%- for parent in graph.nodes[unique_id].depends_on.nodes -%}
            {%- if parent.startswith('model.') and parent not in chain -%}
                {%- do chain.append(parent) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {#- parents first; a model is inlined when it reads the as-of date or an inlined model -#}
    {%- set ordered = [] -%}
    {%- set dated = [] -%}
    {%- for _ in chain -%}
        {%- for unique_id in chain if unique_id not in ordered -%}
            {%- set parents = graph.nodes[unique_id].depends_on.nodes
                | select('in', chain) | list -%}
            {%- if parents | reject('in', ordered) | list | length == 0 -%}
                {%- do ordered.append(unique_id) -%}
                {%- set node = graph.nodes[unique_id] -%}
                {%- if node.depends_on.macros | select('in', dated_macros) | list
                    or parents | select('in', dated) | list -%}
                    {%- do dated.append(unique_id) -%}
                {%- endif -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- for unique_id in dated if unique_id not in compiled -%}
        {#- a partial build (--select) did not compile it: keep the function as it was -#}
        {{ return('') }}
    {%- endfor -%}
    {%- set ctes = [] -%}
    {%- for unique_id in dated -%}
        {%- set inlined = namespace(code=compiled[unique_id]) -%}
        {%- for other in dated -%}
            {%- set inlined.code = inlined.code
                | replace(graph.nodes[other].relation_name, graph.nodes[other].name) -%}
        {%- endfor -%}
        {%- do ctes.append(graph.nodes[unique_id].name ~ ' as not materialized (\n'
            ~ inlined.code ~ '\n)') -%}
    {%- endfor -%}
    {%- set assembled = graph.nodes[target_id] -%}
    {%- set relation = adapter.get_relation(
        database=assembled.database, schema=assembled.schema, identifier=assembled.alias
    ) -%}
    {%- set columns = adapter.get_columns_in_relation(relation) -%}
    {%- set function = explain_function() -%}
    create or replace function {{ function }}(
        p_lead_id text, p_as_of date default null, p_scoring_model_id text default null
    )
    returns table (
        {%- for column in columns %}
            {{ adapter.quote(column.name) }} {{ column.data_type }}{{ "," if not loop.last }}
        {%- endfor %}
    )
    language plpgsql volatile security definer
    set search_path = pg_catalog, public
    as $explain$
    begin
        perform set_config(
            'lead_scoring.as_of',
            cast(coalesce(p_as_of, cast(now() at time zone 'utc' as date)) as text),
            true
        );
        -- every lead, not only those a build would project again (macros/projection.sql)
        perform set_config('lead_scoring.project_all', 'on', true);
        return query execute $lines$
            with {{ ctes | join(',\n') }}
            select * from {{ assembled.name }}
            where ($1 is null or lead_id = $1) and ($2 is null or scoring_model_id = $2)
            order by lead_id, scoring_model_id, score_line_id
        $lines$ using p_lead_id, p_scoring_model_id;
    end
    $explain$;
    comment on function {{ function }}(text, date, text) is
        'The ledger lines of a lead (null: every lead) as of a date (default today, UTC), '
        'recomputed from the warehouse as it is now; see macros/explain.sql.';
{% endmacro %}

{% macro explain_function() %}
    {%- set node = graph.nodes['model.' ~ project_name ~ '.fct_lead_score_ledger'] -%}
    {{ return(adapter.quote(node.schema) ~ '.explain_lead_score') }}
{% endmacro %}

{#-
    `dbt run-operation explain_lead --args '{lead_id: "1234", as_of: "2026-05-01"}'`: the lines
    of one lead as of a date (scoring_model_id: only that model), printed.
-#}
{% macro explain_lead(lead_id, as_of=none, scoring_model_id=none) %}
    {%- set query -%}
        select scoring_model_id, rule_id, rule_type, component, description, window_start,
            counted_count, points_after_caps, decay_points, points
        from {{ explain_function() }}(
            {{ dbt.string_literal(lead_id) }},
            {{ "cast(" ~ dbt.string_literal(as_of) ~ " as date)" if as_of else "null" }},
            {{ dbt.string_literal(scoring_model_id) if scoring_model_id else "null" }}
        )
    {%- endset -%}
    {%- set lines = run_query(query) -%}
    {%- do lines.print_table(max_rows=none, max_columns=none, max_column_width=60) -%}
{% endmacro %}
