{{ config(materialized='table') }}
-- The actors tied to a lead at the as-of date: the lead exists then, the actor was active by
-- then and tied to the lead by then (an anonymous visitor counts from the moment they
-- identified). `is_replayed`: the actor also has activity after the as-of date, so its
-- state (which holds all of it) is not used; its rows up to that date are read again.
-- In a run scored as of today that is none, or a handful with clocks ahead. Every lead's
-- actors: int_leads__reprojected compares them with those of the lead's last projection.

with

actors as (

    select * from {{ ref('int_activity_actors__state') }}
    where first_activity_date <= {{ as_of_date() }}

),

leads as (

    select * from {{ ref('int_leads__resolved_as_of') }}

),

stitched as (

    {{ stitched_to_leads('actors', ref('int_lead_identities__stitched')) }}

),

final as (

    select
        stitched.actor_id,
        stitched.lead_id,
        stitched.last_activity_date > {{ as_of_date() }} as is_replayed,
        stitched.last_activity_date
    from stitched
    where
        stitched.lead_id in (select leads.lead_id from leads)
        and (
            stitched.bound_at is null
            or cast(stitched.bound_at at time zone 'utc' as date) <= {{ as_of_date() }}
        )

)

select * from final
