{#-
    The activity state: what scoring needs from each actor's activity (a Segment user /
    anonymous id, or an email recipient), kept per actor so that a run only recomputes the
    actors that received new rows. The state holds facts of all the activity loaded; the
    as-of models cut it at the as-of date and tie actors to leads. The same macros build the
    state and replay an actor's activity up to an as-of date, so both give the same rows.
-#}

{#- An actor: the rollup's who-did-it columns, hashed (null and '' stay apart). -#}
{% macro actor_id(alias) -%}
    md5(
        cast(
            row({{ alias }}.source_system, {{ alias }}.user_id, {{ alias }}.anonymous_id,
                {{ alias }}.email) as text
        )
    )
{%- endmacro %}

{#- An activity kind: a type and a page (int_activity_kinds__categorized). -#}
{% macro activity_kind_id(alias) -%}
    md5(concat_ws('|', {{ alias }}.activity_type, {{ alias }}.page_path))
{%- endmacro %}

{#-
    The newest rollup change a model built on the rollup (the state, the kinds seen) has
    seen, as a literal read before its build (a bound the planner knows reaches the rollup
    through its `changed_at` index). The rollup stamps a row only when its counts change, and
    a build runs its nodes in order, so the rows changed since are exactly what the model has
    not yet counted: no look-back.
-#}
{% macro rollup_changed_after() -%}
    {%- set changed_after = '-infinity' -%}
    {%- if is_incremental() and execute -%}
        {%- set newest = run_query(
            "select coalesce(cast(max(changed_at) as text), '-infinity') from " ~ this
        ) -%}
        {%- set changed_after = newest.columns[0].values()[0] -%}
    {%- endif -%}
    cast('{{ changed_after }}' as timestamptz)
{%- endmacro %}

{#-
    The actors a state model recomputes: on an incremental run, those with rollup rows changed
    since its newest. `rollup` is the rollup's relation itself, not the model's import CTE: a
    CTE read twice is materialized, and PostgreSQL then found these actors by scanning every
    rollup row of it (spilled to disk) instead of through the `changed_at` index. Their rows are
    all recomputed (a late event can fall into any window), and replace the actor's rows whole.
-#}
{% macro touched_actors(rollup) -%}
    select distinct loaded.actor_id
    from {{ rollup }} as loaded
    where loaded.changed_at > {{ rollup_changed_after() }}
{%- endmacro %}

{#-
    Per actor and activity kind: first and last day, activity count and newest change. Emails
    delivered after the actor's last open or click keep their day (`unopened_on`), which is
    what unopened-email decay counts: a lead's last open is the latest of its actors', and an
    actor's deliveries after that are among those after its own last open.
    `rows` has actor_id, activity_kind_id, activity_type, activity_date, activity_count and
    changed_at.
-#}
{% macro actor_kind_totals(rows) -%}
    select
        dated.actor_id,
        dated.activity_kind_id,
        dated.unopened_on,
        min(dated.activity_date) as first_activity_date,
        max(dated.activity_date) as last_activity_date,
        cast(sum(dated.activity_count) as integer) as activity_count,
        max(dated.changed_at) as changed_at
    from (
        select
            {{ rows }}.*,
            case
                when
                    {{ rows }}.activity_type = 'email_delivered'
                    and {{ rows }}.activity_date > coalesce(
                        max({{ rows }}.activity_date) filter (
                            where {{ rows }}.activity_type in ('email_open', 'email_click')
                        ) over (partition by {{ rows }}.actor_id),
                        date '0001-01-01'
                    )
                    then {{ rows }}.activity_date
            end as unopened_on
        from {{ rows }}
    ) as dated
    group by
        dated.actor_id,
        dated.activity_kind_id,
        dated.unopened_on
{%- endmacro %}

{#-
    The behavioural rules, each with a hash of its row and of the activity types it is
    matched through (a channel mapping decides which activities a rule sees): a state row
    carries the hash of the rule it was counted for, so an edited rule is recounted.
-#}
{% macro hashed_behavioral_rules() -%}
    select
        behavioral_rules.*,
        md5(
            cast(behavioral_rules.* as text) || '|' || (
                select coalesce(
                    string_agg(
                        md5(cast(activity_types.* as text)), ',' order by
                        md5(cast(activity_types.* as text))
                    ),
                    ''
                )
                from {{ ref('activity_types') }} as activity_types
            )
        ) as rule_hash
    from {{ ref('behavioral_rules') }} as behavioral_rules
{%- endmacro %}

{#- After a build of int_actor_rule_windows__state: the windows of rules edited or gone. -#}
{% macro delete_stale_rule_windows() -%}
    delete from {{ this }} as windows
    where not exists (
        select
        from ({{ hashed_behavioral_rules() }}) as rules
        where
            rules.scoring_model_id = windows.scoring_model_id
            and rules.rule_id = windows.rule_id
            and rules.rule_hash = windows.rule_hash
    )
{%- endmacro %}

{#-
    Rules matched to the activity kinds (one row per type and page), so a path pattern is
    tested once per page, not once per activity. `kinds` and `rules` are imports.
-#}
{% macro rule_kinds(kinds, rules) -%}
    select
        {{ kinds }}.activity_kind_id,
        {{ rules }}.scoring_model_id,
        {{ rules }}.rule_id,
        {{ rules }}.rule_hash,
        {{ rules }}.cap_window_days
    from {{ kinds }}
    inner join {{ rules }}
        on
            {{ kinds }}.activity_type = {{ rules }}.activity_type
            and {{ kinds }}.channel = {{ rules }}.channel
            and (
                {{ rules }}.path_pattern is null
                or coalesce({{ kinds }}.page_path ~* {{ rules }}.path_pattern, false)
            )
{%- endmacro %}

{#-
    A behavioural rule's cap windows per actor: windows are fixed, Monday-aligned blocks of
    the rule's cap_window_days (none = one window over all history), so a closed window
    never changes. `rows` has actor_id, activity_kind_id, activity_date, activity_count,
    sample_activity_id and changed_at; `matched` is rule_kinds(); `where` narrows the
    joined rows.
-#}
{% macro actor_rule_windows(rows, matched, where='true') -%}
    select
        windowed.actor_id,
        windowed.scoring_model_id,
        windowed.rule_id,
        windowed.rule_hash,
        windowed.window_start,
        min(windowed.activity_date) as first_activity_date,
        max(windowed.activity_date) as last_activity_date,
        min(windowed.sample_activity_id) as sample_activity_id,
        cast(sum(windowed.activity_count) as integer) as activity_count,
        max(windowed.changed_at) as changed_at
    from (
        select
            {{ rows }}.actor_id,
            {{ matched }}.scoring_model_id,
            {{ matched }}.rule_id,
            {{ matched }}.rule_hash,
            case
                when {{ matched }}.cap_window_days is not null
                    then cast(
                            date_bin(
                                make_interval(days => {{ matched }}.cap_window_days),
                                cast({{ rows }}.activity_date as timestamp),
                                timestamp '2000-01-03'
                            ) as date
                        )
            end as window_start,
            {{ rows }}.activity_date,
            {{ rows }}.activity_count,
            {{ rows }}.sample_activity_id,
            {{ rows }}.changed_at
        from {{ rows }}
        inner join {{ matched }}
            on {{ rows }}.activity_kind_id = {{ matched }}.activity_kind_id
        where {{ where }}
    ) as windowed
    group by
        windowed.actor_id,
        windowed.scoring_model_id,
        windowed.rule_id,
        windowed.rule_hash,
        windowed.window_start
{%- endmacro %}

{#-
    Each actor's lead, and when it was tied to it (the identity stitching): by email first,
    then Segment userId, then anonymousId. `actors` has email, user_id and anonymous_id;
    `identities` is an import of int_lead_identities__stitched. Selects the actors' columns
    with lead_id and bound_at; actors tied to no lead are left out.
-#}
{% macro stitched_to_leads(actors, identities) -%}
    select
        {{ actors }}.*,
        coalesce(by_email.lead_id, by_user_id.lead_id, by_anonymous_id.lead_id) as lead_id,
        coalesce(by_email.bound_at, by_user_id.bound_at, by_anonymous_id.bound_at) as bound_at
    from {{ actors }}
    left join {{ identities }} as by_email
        on
            by_email.identity_type = 'email'
            and {{ actors }}.email = by_email.identity_value
    left join {{ identities }} as by_user_id
        on
            by_user_id.identity_type = 'user_id'
            and {{ actors }}.user_id = by_user_id.identity_value
    left join {{ identities }} as by_anonymous_id
        on
            by_anonymous_id.identity_type = 'anonymous_id'
            and {{ actors }}.anonymous_id = by_anonymous_id.identity_value
    where coalesce(by_email.lead_id, by_user_id.lead_id, by_anonymous_id.lead_id) is not null
{%- endmacro %}
