{#- Generic test: the listed columns together identify one row (a composite primary key). -#}
{% test unique_combination(model, combination) %}
    select
        {{ combination | join(', ') }},
        count(*) as duplicate_rows
    from {{ model }}
    group by {{ combination | join(', ') }}
    having count(*) > 1
{% endtest %}
