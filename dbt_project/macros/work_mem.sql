{#-
    Memory for sorts and hashes while a model builds (`set local`: this transaction only).
    Scoring groups millions of activity and ledger rows; with PostgreSQL's default of 4MB
    those spill to disk several times over. The var `work_mem` sets it ('' keeps the
    server's own setting).
-#}
{% macro set_work_mem() %}
    {%- set work_mem = var('work_mem', '256MB') -%}
    {%- if work_mem -%}
        {%- if not modules.re.fullmatch('[0-9]+ ?(kB|MB|GB)', work_mem | string) -%}
            {{ exceptions.raise_compiler_error(
                "var 'work_mem' must be a size like 256MB, got '" ~ work_mem ~ "'"
            ) }}
        {%- endif -%}
        set local work_mem = '{{ work_mem }}'
    {%- endif -%}
{% endmacro %}
