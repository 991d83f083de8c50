{#- A surrogate key from columns, the same text on both engines (NULLs as empty strings). -#}
{% macro outcome_row_key(columns) -%}
    md5(concat_ws('|', {% for c in columns %}coalesce(cast({{ c }} as string), ''){% if not loop.last %}, {% endif %}{% endfor %}))
{%- endmacro %}
