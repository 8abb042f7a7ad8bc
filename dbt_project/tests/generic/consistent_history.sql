{#-
    A type-2 history is consistent when, per key, its versions follow one another without a
    gap or an overlap: each version ends where the next one starts, lasts longer than an
    instant, and only the last one is open.
-#}
{% test consistent_history(model, partition_by, valid_from='dbt_valid_from',
                           valid_to='dbt_valid_to') %}

with versions as (

    select
        {{ partition_by | join(', ') }},
        {{ valid_from }} as valid_from,
        {{ valid_to }} as valid_to,
        lead({{ valid_from }}) over (
            partition by {{ partition_by | join(', ') }} order by {{ valid_from }}
        ) as next_valid_from
    from {{ model }}

)

select *
from versions
where
    valid_to <= valid_from
    or (next_valid_from is not null and valid_to is distinct from next_valid_from)

{% endtest %}
