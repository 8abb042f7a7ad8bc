-- Every score line of every lead and scoring model at the as-of date: the projected lines
-- (int_lead_score_lines__projected), exact at this date for every lead (a lead whose lines
-- could have changed was projected again), with the dates that follow the as-of date moved
-- to it: an engagement bonus's window ends on the as-of date (and so starts as many days
-- later, which changes its line id), a decay line runs up to it. What the ledger writes and
-- the explain function returns.

with

projected as (

    select * from {{ ref('int_lead_score_lines__projected') }}

),

moved as (

    select
        projected.*,
        case
            when projected.rule_type = 'bonus'
                then projected.window_start + ({{ as_of_date() }} - projected.projected_as_of)
            else projected.window_start
        end as moved_window_start
    from projected

),

final as (

    select
        case
            when moved.rule_type = 'bonus'
                then
                    md5(
                        concat_ws(
                            '|',
                            moved.lead_id,
                            moved.scoring_model_id,
                            moved.rule_id,
                            moved.moved_window_start
                        )
                    )
            else moved.score_line_id
        end as score_line_id,
        moved.lead_id,
        moved.scoring_model_id,
        moved.rule_id,
        moved.rule_type,
        moved.component,
        moved.rule_group,
        moved.description,
        moved.source_type,
        moved.source_ref,
        moved.moved_window_start as window_start,
        case
            when moved.rule_type in ('bonus', 'decay') then {{ as_of_date() }}
            else moved.window_end
        end as window_end,
        moved.sample_activity_id,
        moved.activity_count,
        moved.counted_count,
        moved.raw_points,
        moved.points_after_caps,
        moved.decay_points,
        moved.points
    from moved

)

select * from final
