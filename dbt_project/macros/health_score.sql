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


{#- 0..1 share of a component's points earned, from the measures in the `windows` relation;
    NULL when the component's inputs are unknown (then it is left out of the score). Every
    branch tests for NULL first: least/greatest skip NULLs and would turn "unknown" into 0. -#}
{% macro health_component_fraction(name, params) -%}
    {%- if name == 'seat_utilisation' -%}
        case
            when seat_utilisation is not null
                then least(greatest(seat_utilisation / {{ params['full_at'] }}, 0), 1)
        end
    {%- elif name == 'usage_trend' -%}
        {#- logins where the log has session events, else all activity events; no usage at all
            earns nothing; growth from none is full points; without a full earlier period
            (a young account) the trend is unknown -#}
        {%- set now = 'coalesce(logins_28d, portal_events_28d)' -%}
        {%- set before = 'case when logins_28d is not null then logins_prev_28d else portal_events_prev_28d end' -%}
        case
            when {{ now }} is null then null
            when {{ now }} = 0 then 0
            when window_first_date > {{ add_days(-55, 'as_of_date') }} then null
            when coalesce({{ before }}, 0) = 0 then 1
            else least(greatest(
                (cast({{ now }} - {{ before }} as double) / {{ before }} - ({{ params['zero_at'] }}))
                / ({{ params['full_at'] }} - ({{ params['zero_at'] }})), 0), 1)
        end
    {%- elif name == 'feature_breadth' -%}
        case
            when feature_breadth_28d is not null
                then least(greatest(feature_breadth_28d / {{ params['full_at'] }}, 0), 1)
        end
    {%- elif name == 'admin_recency' -%}
        case
            when days_since_admin_activity is not null
                then greatest(1 - days_since_admin_activity / {{ params['zero_at_days'] }}, 0)
        end
    {%- elif name == 'activity_recency' -%}
        case
            when days_since_last_activity is not null
                then greatest(1 - days_since_last_activity / {{ params['zero_at_days'] }}, 0)
        end
    {%- endif -%}
{%- endmacro %}


{#- An expression per segment: `template` with {weight} and {fraction} filled in for `name`. -#}
{% macro _health_by_segment(name, settings, template, segment_column='segment') -%}
    {%- set overridden = settings.keys() | reject('equalto', 'default') | list -%}
    {%- set default = settings['default']['components'][name] -%}
    {%- if overridden %}
        case
            {%- for segment in overridden %}
            {%- set params = settings[segment]['components'][name] %}
            when {{ segment_column }} = '{{ segment }}'
                then {{ template | replace('{weight}', params['weight'] | string) | replace('{fraction}', health_component_fraction(name, params)) }}
            {%- endfor %}
            else {{ template | replace('{weight}', default['weight'] | string) | replace('{fraction}', health_component_fraction(name, default)) }}
        end
    {%- else %}
        {{ template | replace('{weight}', default['weight'] | string) | replace('{fraction}', health_component_fraction(name, default)) }}
    {%- endif %}
{%- endmacro %}


{#- The weight (of 100) of the components whose inputs are known. -#}
{% macro health_weight_used(settings, segment_column='segment') -%}
    {%- for name in health_component_names() %}
        ({{ _health_by_segment(name, settings, 'case when ({fraction}) is not null then {weight} else 0 end', segment_column) }}){{ ' +' if not loop.last }}
    {%- endfor %}
{%- endmacro %}


{#- How many components the score used (0 = no score). -#}
{% macro health_components_used(settings, segment_column='segment') -%}
    {%- for name in health_component_names() %}
        (case when ({{ health_component_fraction(name, settings['default']['components'][name]) }}) is not null then 1 else 0 end){{ ' +' if not loop.last }}
    {%- endfor %}
{%- endmacro %}


{#- Points of one component out of 100, its weight re-normalised over the components used
    (`health_weight_used` must be a column); NULL when the component was left out. -#}
{% macro health_component_points(name, settings, segment_column='segment') -%}
    cast(round(
        {{ _health_by_segment(name, settings, '{weight} * ({fraction})', segment_column) }}
        * 100.0 / nullif(health_weight_used, 0), 2) as decimal(5, 2))
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
        when {{ score_column }} is null then null
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
