{#-
    Every value is an attribute rules can test: one of rule_attributes(), or `prop:<name>`,
    which reads the contact's CRM property <name> as it was at the as-of date.
-#}
{% test rule_attribute(model, column_name) %}

select {{ column_name }}
from {{ model }}
where
    {{ column_name }} is not null
    and {{ column_name }} not in ('{{ rule_attributes() | join("', '") }}')
    and {{ column_name }} !~ '^prop:[A-Za-z0-9_]+$'

{% endtest %}
