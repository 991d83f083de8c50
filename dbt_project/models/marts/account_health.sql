-- Daily account health per as-of date: rolling windows, trends, utilisation, recency, renewal,
-- and a 0-100 score whose per-component points are kept as score_* columns.
-- Each row reads only engagement on or before its own as_of_date (point in time).
{{
    config(
        materialized='incremental',
        incremental_strategy='microbatch',
        event_time='as_of_date',
        batch_size=var('microbatch_size'),
        begin=var('history_start'),
        lookback=5,
    )
}}

{%- set summed = [
    ('logins', 'bigint'),
    ('session_minutes', 'decimal(14, 2)'),
    ('docs_viewed', 'bigint'),
    ('docs_downloaded', 'bigint'),
    ('docs_shared', 'bigint'),
    ('docs_uploaded', 'bigint'),
    ('docs_commented', 'bigint'),
    ('feature_events', 'bigint'),
    ('premium_feature_events', 'bigint'),
    ('csm_emails_opened', 'bigint'),
    ('csm_emails_clicked', 'bigint'),
] %}
{#- window name: (days back to the window's first day, days back to its last day) -#}
{%- set windows = [('7d', 6, 0), ('prev_7d', 13, 7), ('28d', 27, 0), ('prev_28d', 55, 28), ('90d', 89, 0)] %}
{%- set settings = health_score_settings() %}
{%- set components = health_component_names() %}
{#- In a microbatch run only the batch's days are scored; inputs are bounded to 90 days before. -#}
{%- set batch = model.get('batch') if model is mapping else none %}
{%- set batch_start = batch.get('event_time_start') if batch else none %}
{%- set lower_bound = add_days(-90, "cast('" ~ (batch_start | string)[:10] ~ "' as date)") if batch_start else none %}

with

calendar as (

    -- filtered to the batch's days by dbt
    select calendar_date as as_of_date from {{ ref('int_days_enumerated') }}

),

daily as (

    select * from {{ ref('fct_account_daily_engagement').render() }}
    {%- if lower_bound %}
    where activity_date >= {{ lower_bound }}
    {%- endif %}

),

user_days as (

    select * from {{ ref('int_user_days_aggregated').render() }}
    {%- if lower_bound %}
    where activity_date >= {{ lower_bound }}
    {%- endif %}

),

feature_days as (

    select * from {{ ref('int_feature_usage_aggregated').render() }}
    {%- if lower_bound %}
    where activity_date >= {{ lower_bound }}
    {%- endif %}

),

account_versions as (

    select * from {{ ref('dim_accounts_history') }}

),

grid as (

    -- every account-day of the fact on the days being scored
    select
        daily.account_id,
        calendar.as_of_date
    from calendar
    inner join daily
        on calendar.as_of_date = daily.activity_date

),

engagement_windows as (

    select
        grid.account_id,
        grid.as_of_date,
        {%- for name, data_type in summed %}
            {%- for window, first_back, last_back in windows %}
                cast(coalesce(sum(case
                    when
                        daily.activity_date >= {{ add_days(-first_back, 'grid.as_of_date') }}
                        and daily.activity_date <= {{ add_days(-last_back, 'grid.as_of_date') }}
                        then daily.{{ name }}
                end), 0) as {{ data_type }}) as {{ name }}_{{ window }},
            {%- endfor %}
        {%- endfor %}
        cast(count(case
            when daily.activity_date >= {{ add_days(-6, 'grid.as_of_date') }} and not daily.is_data_landed
                then 1
        end) as integer) as missing_days_7d,
        cast(count(case
            when daily.activity_date >= {{ add_days(-27, 'grid.as_of_date') }} and not daily.is_data_landed
                then 1
        end) as integer) as missing_days_28d,
        min(daily.activity_date) as window_first_date
    from grid
    inner join daily
        on
            grid.account_id = daily.account_id
            and daily.activity_date >= {{ add_days(-89, 'grid.as_of_date') }}
            and grid.as_of_date >= daily.activity_date
    group by grid.account_id, grid.as_of_date

),

user_windows as (

    select
        grid.account_id,
        grid.as_of_date,
        {%- for window, first_back, last_back in windows if window != 'prev_7d' %}
            cast(count(distinct case
                when
                    user_days.is_active
                    and user_days.activity_date >= {{ add_days(-first_back, 'grid.as_of_date') }}
                    and user_days.activity_date <= {{ add_days(-last_back, 'grid.as_of_date') }}
                    then user_days.user_id
            end) as bigint) as active_users_{{ window }},
        {%- endfor %}
        cast(count(distinct case
            when
                user_days.is_active and user_days.is_admin
                and user_days.activity_date >= {{ add_days(-27, 'grid.as_of_date') }}
                then user_days.user_id
        end) as bigint) as admin_active_users_28d,
        max(case when user_days.is_active then user_days.activity_date end) as last_active_date,
        max(case when user_days.is_active and user_days.is_admin then user_days.activity_date end)
            as last_admin_active_date
    from grid
    inner join user_days
        on
            grid.account_id = user_days.account_id
            and user_days.activity_date >= {{ add_days(-89, 'grid.as_of_date') }}
            and grid.as_of_date >= user_days.activity_date
    group by grid.account_id, grid.as_of_date

),

feature_windows as (

    select
        grid.account_id,
        grid.as_of_date,
        cast(count(distinct case
            when
                feature_days.activity_date >= {{ add_days(-27, 'grid.as_of_date') }}
                and feature_days.is_catalog_feature
                then feature_days.feature_name
        end) as bigint) as feature_breadth_28d,
        cast(count(distinct case
            when
                feature_days.activity_date <= {{ add_days(-28, 'grid.as_of_date') }}
                and feature_days.is_catalog_feature
                then feature_days.feature_name
        end) as bigint) as feature_breadth_prev_28d,
        cast(count(distinct case
            when
                feature_days.activity_date >= {{ add_days(-27, 'grid.as_of_date') }}
                and feature_days.is_premium
                then feature_days.feature_name
        end) as bigint) as premium_feature_breadth_28d
    from grid
    inner join feature_days
        on
            grid.account_id = feature_days.account_id
            and feature_days.activity_date >= {{ add_days(-55, 'grid.as_of_date') }}
            and grid.as_of_date >= feature_days.activity_date
    group by grid.account_id, grid.as_of_date

),

measured as (

    select
        engagement_windows.*,
        {%- for window, first_back, last_back in windows if window != 'prev_7d' %}
            coalesce(user_windows.active_users_{{ window }}, 0) as active_users_{{ window }},
        {%- endfor %}
        coalesce(user_windows.admin_active_users_28d, 0) as admin_active_users_28d,
        coalesce(feature_windows.feature_breadth_28d, 0) as feature_breadth_28d,
        coalesce(feature_windows.feature_breadth_prev_28d, 0) as feature_breadth_prev_28d,
        coalesce(feature_windows.premium_feature_breadth_28d, 0) as premium_feature_breadth_28d,
        -- no activity in the 90-day window: count from the window's first day (at most 90)
        coalesce(
            {{ days_between('user_windows.last_active_date', 'engagement_windows.as_of_date') }},
            {{ days_between('engagement_windows.window_first_date', 'engagement_windows.as_of_date') }} + 1
        ) as days_since_last_activity,
        coalesce(
            {{ days_between('user_windows.last_admin_active_date', 'engagement_windows.as_of_date') }},
            {{ days_between('engagement_windows.window_first_date', 'engagement_windows.as_of_date') }} + 1
        ) as days_since_admin_activity,
        account_versions.plan,
        account_versions.segment,
        account_versions.seats,
        account_versions.arr,
        account_versions.renewal_date,
        account_versions.csm_email,
        account_versions.manager_email
    from engagement_windows
    left join user_windows
        on
            engagement_windows.account_id = user_windows.account_id
            and engagement_windows.as_of_date = user_windows.as_of_date
    left join feature_windows
        on
            engagement_windows.account_id = feature_windows.account_id
            and engagement_windows.as_of_date = feature_windows.as_of_date
    inner join account_versions
        on
            engagement_windows.account_id = account_versions.account_id
            and (engagement_windows.as_of_date >= account_versions.valid_from or account_versions.version_number = 1)
            and (account_versions.valid_to is null or engagement_windows.as_of_date < account_versions.valid_to)

),

derived as (

    select
        *,
        -- change ratios: NULL when the earlier period had nothing to compare with, or is not
        -- fully inside the account's history (a ramp-up is not growth)
        case
            when window_first_date <= {{ add_days(-55, 'as_of_date') }} then
                cast(active_users_28d - active_users_prev_28d as double) / nullif(active_users_prev_28d, 0)
        end as active_users_trend_28d,
        case
            when window_first_date <= {{ add_days(-55, 'as_of_date') }} then
                cast(logins_28d - logins_prev_28d as double) / nullif(logins_prev_28d, 0)
        end as logins_trend_28d,
        case
            when window_first_date <= {{ add_days(-13, 'as_of_date') }} then
                cast(logins_7d - logins_prev_7d as double) / nullif(logins_prev_7d, 0)
        end as wow_logins_change,
        cast(active_users_28d as double) / nullif(seats, 0) as seat_utilisation,
        {{ days_between('as_of_date', 'renewal_date') }} as days_to_renewal,
        missing_days_7d = 0 as is_data_complete
    from measured

),

scored as (

    select
        *,
    {%- for name in components %}
        {{ health_component_points(name, settings) }} as score_{{ name }}{{ ',' if not loop.last }}  -- noqa: LT02
    {%- endfor %}
    from derived

),

final as (

    select
        *,
        cast(round(
            {%- for name in components %} score_{{ name }}{{ ' +' if not loop.last }}{% endfor %}, 1
        ) as decimal(5, 1)) as health_score
    from scored

)

select
    *,
    {{ health_tier('health_score', settings) }} as health_tier
from final
