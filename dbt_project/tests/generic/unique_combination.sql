{#-
    Fails for every combination of the given columns that occurs more than once.
    Usage (model level):
      data_tests:
        - unique_combination:
            arguments:
              combination_of_columns: [item_id, location_id, sales_date]
    Passes on an empty model.
-#}
{% test unique_combination(model, combination_of_columns) %}

with validation_errors as (

    select
        {{ combination_of_columns | join(',\n        ') }},
        count(*) as n_records
    from {{ model }}
    group by {{ combination_of_columns | join(', ') }}
    having count(*) > 1

)

select * from validation_errors

{% endtest %}
