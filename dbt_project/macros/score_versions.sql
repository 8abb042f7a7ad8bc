{#-
    The score versions (lead_score_history) and the current scores (fct_lead_scores) are
    compared with each day's scores before they are rebuilt, so the model that compares them
    (int_lead_score_changes) reads them by name, not by ref (a ref would be a cycle).
    `built_relation` is the table a model of this project last built, or none before its first
    build (or when it lacks `column`: a table from before score versions, see the README).
-#}
{% macro built_relation(model_name, column=none) %}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set node = graph.nodes['model.' ~ project_name ~ '.' ~ model_name] -%}
    {%- set relation = adapter.get_relation(
        database=node.database, schema=node.schema, identifier=node.alias
    ) -%}
    {%- if relation is none or not relation.is_table -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if column is not none -%}
        {%- set names = adapter.get_columns_in_relation(relation) | map(attribute='name') | list -%}
        {%- if column not in names -%}
            {{ return(none) }}
        {%- endif -%}
    {%- endif -%}
    {{ return(relation) }}
{% endmacro %}

{#- The columns of a score version, in the order the score marts hold them. -#}
{% macro score_version_columns() %}
    {{ return([
        'score_id', 'lead_id', 'scoring_model_id', 'as_of_date', 'email', 'segment',
        'demographic_score', 'behavioral_score', 'negative_score', 'decay_score', 'raw_score',
        'total_score', 'band', 'fit_score', 'fit_grade', 'is_mql', 'mql_date', 'is_sql',
        'sql_date', 'has_decision_signal', 'top_reasons', 'ruleset_version', 'scored_at',
        'score_hash',
    ]) }}
{% endmacro %}

{#- `alias.column, ...` for the score version columns. -#}
{% macro score_version_select(alias) %}
    {%- for column in score_version_columns() %}
        {{ alias }}.{{ column }}{{ "," if not loop.last }}
    {%- endfor %}
{% endmacro %}

{#-
    What a version of a score is: a change to any of these opens a new version. The CRM sees
    the same fields, so a sync has something to send exactly when a version opens.
-#}
{% macro score_hash(alias) %}
    md5(cast(row(
        {{ alias }}.email, {{ alias }}.segment, {{ alias }}.demographic_score,
        {{ alias }}.behavioral_score, {{ alias }}.negative_score, {{ alias }}.decay_score,
        {{ alias }}.total_score, {{ alias }}.band, {{ alias }}.fit_score, {{ alias }}.fit_grade,
        {{ alias }}.is_mql, {{ alias }}.is_sql, {{ alias }}.has_decision_signal,
        {{ alias }}.top_reasons, {{ alias }}.ruleset_version
    ) as text))
{% endmacro %}

{#-
    Pre-hook of the current scores and the ledger: remove the rows of every lead and model
    this build changes (dropped ones included) before the model inserts their new rows.
-#}
{% macro delete_changed_scores() %}
    {%- if is_incremental() -%}
        delete from {{ this }} as target
        using {{ ref('int_lead_score_changes') }} as changes
        where
            target.lead_id = changes.lead_id
            and target.scoring_model_id = changes.scoring_model_id
    {%- endif -%}
{% endmacro %}

{#-
    The scores of a past date, for BI and ad-hoc SQL: the score versions current then.
        select * from {{ lead_scores_as_of("'2026-06-01'") }} as scores
    `as_of` is SQL (a quoted date, a column, current_date - 7).
-#}
{% macro lead_scores_as_of(as_of) %}
    (
        select history.*
        from {{ ref('lead_score_history') }} as history
        where
            history.dbt_valid_from <= cast(cast({{ as_of }} as date) + 1 as timestamp)
            and (
                history.dbt_valid_to is null
                or history.dbt_valid_to > cast(cast({{ as_of }} as date) + 1 as timestamp)
            )
    )
{% endmacro %}
