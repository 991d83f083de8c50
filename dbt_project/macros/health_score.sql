{#-
    Health score from the `health_score` var (the content of config/health_score.yml).
    Each component maps one account_health measure onto 0..1 and earns weight * that many points;
    weights are points out of 100. Segment overrides replace single parameters of the default.
-#}

{% macro health_component_names() -%}
    {{ return(['seat_utilisation', 'usage_trend', 'feature_breadth', 'admin_recency', 'activity_recency']) }}
{%- endmacro %}


{#- Default settings merged with each segment's overrides, validated: {segment or 'default': cfg}. -#}
{% macro health_score_settings() -%}
    {%- set cfg = var('health_score') -%}
    {%- set names = health_component_names() -%}
    {%- set base_components = cfg.get('components', {}) -%}
    {%- for name in base_components -%}
        {%- if name not in names -%}
            {{ exceptions.raise_compiler_error("health_score: unknown component '" ~ name ~ "' in config/health_score.yml; known components: " ~ names | join(', ')) }}
        {%- endif -%}
    {%- endfor -%}
    {%- set settings = {} -%}
    {%- set overrides = cfg.get('segment_overrides', {}) or {} -%}
    {%- set segment_names = ['default'] + (overrides.keys() | list) -%}
    {%- for segment in segment_names -%}
        {%- set override = overrides.get(segment, {}) if segment != 'default' else {} -%}
        {%- set components = {} -%}
        {%- set total = namespace(weight=0) -%}
        {%- for name in names -%}
            {%- set merged = {} -%}
            {%- do merged.update(base_components.get(name, {'weight': 0})) -%}
            {%- do merged.update((override.get('components', {}) or {}).get(name, {})) -%}
            {%- do components.update({name: merged}) -%}
            {%- set total.weight = total.weight + merged.get('weight', 0) -%}
        {%- endfor -%}
        {%- if (total.weight - 100) | abs > 0.001 -%}
            {{ exceptions.raise_compiler_error("health_score: component weights for segment '" ~ segment ~ "' add up to " ~ total.weight ~ ", not 100; fix the weights in config/health_score.yml") }}
        {%- endif -%}
        {%- set tiers = {} -%}
        {%- do tiers.update(cfg.get('tiers', {})) -%}
        {%- do tiers.update(override.get('tiers', {}) or {}) -%}
        {%- if not (tiers.get('healthy', 0) > tiers.get('watch', 0) > tiers.get('at_risk', 0)) -%}
            {{ exceptions.raise_compiler_error("health_score: tiers for segment '" ~ segment ~ "' must satisfy healthy > watch > at_risk (got " ~ tiers ~ ")") }}
        {%- endif -%}
        {%- do settings.update({segment: {'components': components, 'tiers': tiers}}) -%}
    {%- endfor -%}
    {{ return(settings) }}
{%- endmacro %}


{#- 0..1 share of a component's points earned, from the measures in the `windows` relation. -#}
{% macro health_component_fraction(name, params) -%}
    {%- if name == 'seat_utilisation' -%}
        least(greatest(coalesce(seat_utilisation, 0) / {{ params['full_at'] }}, 0), 1)
    {%- elif name == 'usage_trend' -%}
        {#- no logins at all earns nothing; logins from zero count as growth -#}
        case
            when coalesce(logins_28d, 0) = 0 then 0
            else least(greatest(
                (coalesce(logins_trend_28d, {{ params['full_at'] }}) - ({{ params['zero_at'] }}))
                / ({{ params['full_at'] }} - ({{ params['zero_at'] }})), 0), 1)
        end
    {%- elif name == 'feature_breadth' -%}
        least(greatest(coalesce(feature_breadth_28d, 0) / {{ params['full_at'] }}, 0), 1)
    {%- elif name == 'admin_recency' -%}
        greatest(1 - days_since_admin_activity / {{ params['zero_at_days'] }}, 0)
    {%- elif name == 'activity_recency' -%}
        greatest(1 - days_since_last_activity / {{ params['zero_at_days'] }}, 0)
    {%- endif -%}
{%- endmacro %}


{#- Points of one component, choosing the segment's settings row by row. -#}
{% macro health_component_points(name, settings, segment_column='segment') -%}
    {%- set default = settings['default']['components'][name] -%}
    {%- set overridden = settings.keys() | reject('equalto', 'default') | list -%}
    cast(round(
        {%- if overridden %}
        case
            {%- for segment in overridden %}
            when {{ segment_column }} = '{{ segment }}'
                then {{ settings[segment]['components'][name]['weight'] }}
                    * ({{ health_component_fraction(name, settings[segment]['components'][name]) }})
            {%- endfor %}
            else {{ default['weight'] }} * ({{ health_component_fraction(name, default) }})
        end
        {%- else %}
        {{ default['weight'] }} * ({{ health_component_fraction(name, default) }})
        {%- endif %}, 2) as decimal(5, 2))
{%- endmacro %}


{#- healthy / watch / at_risk / critical from a score column, per segment thresholds. -#}
{% macro health_tier(score_column, settings, segment_column='segment') -%}
    {%- set overridden = settings.keys() | reject('equalto', 'default') | list -%}
    {%- if overridden -%}
    case
        {%- for segment in overridden %}
        when {{ segment_column }} = '{{ segment }}' then {{ _health_tier_case(score_column, settings[segment]['tiers']) }}
        {%- endfor %}
        else {{ _health_tier_case(score_column, settings['default']['tiers']) }}
    end
    {%- else -%}
    {{ _health_tier_case(score_column, settings['default']['tiers']) }}
    {%- endif -%}
{%- endmacro %}


{% macro _health_tier_case(score_column, tiers) -%}
    case
        when {{ score_column }} >= {{ tiers['healthy'] }} then 'healthy'
        when {{ score_column }} >= {{ tiers['watch'] }} then 'watch'
        when {{ score_column }} >= {{ tiers['at_risk'] }} then 'at_risk'
        else 'critical'
    end
{%- endmacro %}


{#- Account segment from ARR, thresholds from the health_score var; unknown ARR, unknown segment. -#}
{% macro account_segment(arr_column) -%}
    {%- set seg = var('health_score').get('segmentation', {}) -%}
    case
        when {{ arr_column }} is null then null
        when {{ arr_column }} >= {{ seg.get('enterprise_min_arr', 100000) }} then 'enterprise'
        when {{ arr_column }} >= {{ seg.get('mid_market_min_arr', 25000) }} then 'mid_market'
        else 'smb'
    end
{%- endmacro %}
