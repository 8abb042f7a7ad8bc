{#-
    Scores as a projection of state (issue 21). The models from the lead's activity to its
    score lines and scores (int_lead_rule_windows__as_of, int_lead_activity_kinds__as_of, the
    line views, int_lead_score_lines__projected, int_lead_scores__projected) compute only the
    leads int_leads__reprojected lists: those whose inputs changed since they were last
    projected (activity, attributes, identities, rules) and those whose score may move by the
    passage of time alone (a half-life step, an inactivity or unopened-email penalty that
    starts, a bonus whose window lets an activity go, a decision signal that expires; each
    projection stores the first such day, int_lead_projections.changes_on). Every other
    lead's projection is still exact at the new as-of date; the dates on its lines that follow
    the as-of date are moved by int_lead_score_lines__assembled.

    `lead_scoring.project_all` = `on` (set by the explain function) projects every lead.
-#}

{% macro project_all() -%}
    coalesce(current_setting('lead_scoring.project_all', true) = 'on', false)
{%- endmacro %}

{#-
    Pre-hook of the incremental projections: remove the rows of the leads this build projects
    again (or no longer scores) before the model appends their new rows; every row when the
    projections' bookkeeping is missing (a first build after an upgrade).
-#}
{% macro delete_reprojected() %}
    {%- if is_incremental() -%}
        {%- if built_relation('int_lead_projections') is none -%}
            delete from {{ this }}
        {%- else -%}
            delete from {{ this }} as target
            using {{ ref('int_leads__reprojected') }} as reprojected
            where target.lead_id = reprojected.lead_id
        {%- endif -%}
    {%- endif -%}
{% endmacro %}

{#- The leads this build projects (a filter on `column`, e.g. `windows.lead_id`). -#}
{% macro is_reprojected(column) -%}
    {{ column }} in (
        select reprojected.lead_id from {{ ref('int_leads__reprojected') }} as reprojected
        where reprojected.is_scored
    )
{%- endmacro %}
