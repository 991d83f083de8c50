{#-
    The run's as-of date as a SQL date expression. Every model that must not look past the
    as-of date filters with it: the var when given, else the latest landed events day.
-#}
{% macro as_of_date() -%}
    {%- set value = var('as_of_date', '') -%}
    {%- if value -%}
        cast('{{ value }}' as date)
    {%- else -%}
        (select max(landing_date) from {{ ref('stg_raw__landed_partitions') }} where source_name in ('events', 'history'))
    {%- endif -%}
{%- endmacro %}


{#- Whole days from start to end (end - start), cast so both engines return an integer. -#}
{% macro days_between(start, end) -%}
    cast({{ dbt.datediff(start, end, 'day') }} as integer)
{%- endmacro %}


{#- A date shifted by a whole number of days, always typed date on both engines. -#}
{% macro add_days(days, from_date) -%}
    cast({{ dbt.dateadd('day', days, from_date) }} as date)
{%- endmacro %}
