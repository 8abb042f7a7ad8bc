{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='as_of_date',
    )
}}
-- Backtests only: prepare_workspace copies this model into a backtest's copy of the project.
-- Per as-of date (each cutoff), lead, model and rule, the points the rule gave: the features a
-- learned ruleset is fitted on. The product keeps only the current ledger lines; a backtest
-- needs every cutoff's, so it keeps them here, in its own schema.

with

lines as (

    select * from {{ ref('int_lead_score_lines__assembled') }}

),

final as (

    select
        {{ as_of_date() }} as as_of_date,
        lines.lead_id,
        lines.scoring_model_id,
        lines.rule_id,
        lines.rule_type,
        cast(sum(lines.points) as float) as points
    from lines
    where lines.rule_type in ('demographic', 'behavioral', 'bonus', 'decay')
    group by
        lines.lead_id,
        lines.scoring_model_id,
        lines.rule_id,
        lines.rule_type

)

select * from final
