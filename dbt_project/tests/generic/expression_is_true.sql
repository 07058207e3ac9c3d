{#-
    Fails for every row where the SQL boolean expression is false.
    Model level:  expression: "p10 <= p50"
    Column level: expression: ">= 0"  (prefixed with the column name)
    Rows where the expression evaluates to null pass (combine with not_null).
    Passes on an empty model.
-#}
{% test expression_is_true(model, expression, column_name=none) %}

with validation_errors as (

    select *
    from {{ model }}
    {% if column_name is none %}
    where not ({{ expression }})
    {% else %}
    where not ({{ column_name }} {{ expression }})
    {% endif %}

)

select * from validation_errors

{% endtest %}
