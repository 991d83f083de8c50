{#- Helpers of the window-function marts (account_health): frames over whole days, steps
    that turn "distinct in a rolling window" into a running sum. -#}

{#- A frame over whole days before each row's day (0 = the row's own day). -#}
{% macro day_frame(first_back, last_back) -%}
    range between {{ first_back }} preceding and {{ 'current row' if last_back == 0 else last_back ~ ' preceding' }}
{%- endmacro %}
{#- " and <column> in [lower, upper)" for the bounds that are set (SQL date expressions). -#}
{% macro within_days(column, lower, upper) -%}
    {%- if lower %} and {{ column }} >= {{ lower }}{% endif %}
    {%- if upper %} and {{ column }} < {{ upper }}{% endif %}
{%- endmacro %}

{#- A user (or feature) active on day d, next active on day n, is the last sighting in the window
    [D - first_back, D - last_back] for D from d + last_back up to before
    min(d + first_back + 1, n + last_back): +1 at the first of those days, -1 after the last.
    A running sum of these steps is the distinct count on each day. -#}
{% macro last_sighting_steps(source, metric, first_back, last_back, where='') %}
    select
        account_id,
        '{{ metric }}' as metric,
        day_number + {{ last_back }} as day_number,
        1 as step
    from {{ source }}
    {%- if where %}
    where {{ where }}
    {%- endif %}
    union all
    select
        account_id,
        '{{ metric }}' as metric,
        least(
            day_number + {{ first_back + 1 }},
            coalesce(next_day_number + {{ last_back }}, day_number + {{ first_back + 1 }})
        ) as day_number,
        -1 as step
    from {{ source }}
    {%- if where %}
    where {{ where }}
    {%- endif %}
{%- endmacro %}
