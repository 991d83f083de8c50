-- Daily account health per as-of date: rolling windows, trends, utilisation, recency, renewal,
-- and a 0-100 score whose per-component points are kept as score_* columns.
-- Each row reads only engagement on or before its own as_of_date (point in time).
-- Rolling windows are window functions over whole days of the dense daily fact (RANGE frames
-- over a day number, so a gap in an account's days is never counted as a day); distinct users
-- and features per window come from running sums of +1/-1 steps (macros/windows.sql), because
-- count(distinct) cannot be a window function on Spark. Each input row is read a few times
-- instead of once per later day that looks back at it.
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
    ('portal_events', 'bigint'),
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
{#- Distinct-count windows over user and feature days: (name, first_back, last_back). -#}
{%- set user_windows = [('7d', 6, 0), ('28d', 27, 0), ('prev_28d', 55, 28), ('90d', 89, 0)] %}
{%- set feature_windows = [
    ('feature_breadth_28d', 'catalog', 27, 0),
    ('feature_breadth_prev_28d', 'catalog', 55, 28),
    ('premium_feature_breadth_28d', 'premium', 27, 0),
] %}
{#- In a microbatch run only the batch's days are scored; inputs are bounded to the 90 days
    before the batch and to its last day (windows only look back). -#}
{%- set batch = model.get('batch') if model is mapping else none %}
{%- set batch_start = batch.get('event_time_start') if batch else none %}
{%- set batch_end = batch.get('event_time_end') if batch else none %}
{%- set lower_bound = add_days(-90, "cast('" ~ (batch_start | string)[:10] ~ "' as date)") if batch_start else none %}
{%- set upper_bound = "cast('" ~ (batch_end | string)[:10] ~ "' as date)" if batch_end else none %}
{#- Whole days since a fixed date: the ORDER BY of every RANGE frame below. -#}
{%- set day_number = days_between("cast('2000-01-01' as date)", 'activity_date') %}

with

calendar as (

    -- filtered to the batch's days by dbt
    select calendar_date as as_of_date from {{ ref('int_days_enumerated') }}

),

daily as (

    select
        *,
        {{ day_number }} as day_number
    from {{ ref('fct_account_daily_engagement').render() }}
    where activity_date is not null{{ within_days('activity_date', lower_bound, upper_bound) }}

),

user_days as (

    select
        account_id,
        user_id,
        is_admin,
        {{ day_number }} as day_number
    from {{ ref('int_user_days_aggregated').render() }}
    where is_active{{ within_days('activity_date', lower_bound, upper_bound) }}

),

feature_days as (

    select
        account_id,
        feature_name,
        is_premium,
        {{ day_number }} as day_number
    from {{ ref('int_feature_usage_aggregated').render() }}
    where is_catalog_feature{{ within_days('activity_date', lower_bound, upper_bound) }}

),

account_versions as (

    select * from {{ ref('dim_accounts_history') }}

),

account_roles as (

    select * from {{ ref('int_account_roles') }}

),

engagement_running as (

    -- running sums over the account's dense daily fact: each row is read once per window
    select
        account_id,
        activity_date,
        day_number,
        {%- for name, data_type in summed %}
            {%- for window, first_back, last_back in windows %}
                -- NULL when no day of the window knows the measure (not landed, or a measure
                -- the data cannot give), never zero
                cast(sum({{ name }}) over (
                    partition by account_id order by day_number asc nulls last
                    {{ day_frame(first_back, last_back) }}
                ) as {{ data_type }}) as {{ name }}_{{ window }},
            {%- endfor %}
        {%- endfor %}
        cast(count(case when not is_data_landed then 1 end) over (
            partition by account_id order by day_number asc nulls last {{ day_frame(6, 0) }}
        ) as integer) as missing_days_7d,
        cast(count(case when not is_data_landed then 1 end) over (
            partition by account_id order by day_number asc nulls last {{ day_frame(27, 0) }}
        ) as integer) as missing_days_28d,
        min(activity_date) over (
            partition by account_id order by day_number asc nulls last {{ day_frame(89, 0) }}
        ) as window_first_date
    from daily

),

engagement_windows as (

    -- every account-day of the fact on the days being scored
    select
        engagement_running.account_id,
        calendar.as_of_date,
        {%- for name, data_type in summed %}
            {%- for window, first_back, last_back in windows %}
                engagement_running.{{ name }}_{{ window }},
            {%- endfor %}
        {%- endfor %}
        engagement_running.missing_days_7d,
        engagement_running.missing_days_28d,
        engagement_running.window_first_date,
        engagement_running.day_number
    from calendar
    inner join engagement_running
        on calendar.as_of_date = engagement_running.activity_date

),

user_next_days as (

    -- each user's active days with the next one (for distinct counts without count(distinct) over)
    select
        account_id,
        is_admin,
        day_number,
        lead(day_number) over (
            partition by account_id, user_id order by day_number asc nulls last
        ) as next_day_number
    from user_days

),

admin_next_days as (

    select
        account_id,
        day_number,
        lead(day_number) over (
            partition by account_id, user_id order by day_number asc nulls last
        ) as next_day_number
    from user_days
    where is_admin

),

feature_next_days as (

    select
        account_id,
        is_premium,
        day_number,
        lead(day_number) over (
            partition by account_id, feature_name order by day_number asc nulls last
        ) as next_day_number
    from feature_days

),



steps as (

    {%- for window, first_back, last_back in user_windows %}
    {{ last_sighting_steps('user_next_days', 'active_users_' ~ window, first_back, last_back) }}
    union all
    {%- endfor %}
    {{ last_sighting_steps('admin_next_days', 'admin_active_users_28d', 27, 0) }}
    {%- for metric, kind, first_back, last_back in feature_windows %}
    union all
    {{ last_sighting_steps('feature_next_days', metric, first_back, last_back, 'is_premium' if kind == 'premium' else '') }}
    {%- endfor %}
    union all
    -- the days of user activity themselves (recency), and every scored day
    select
        account_id,
        case when is_admin then 'admin_active' else 'active' end as metric,
        day_number,
        0 as step
    from user_next_days
    union all
    select
        account_id,
        'scored' as metric,
        day_number,
        0 as step
    from engagement_windows

),

step_days as (

    select
        account_id,
        day_number,
        {%- for window, first_back, last_back in user_windows %}
        sum(case when metric = 'active_users_{{ window }}' then step else 0 end) as active_users_{{ window }},
        {%- endfor %}
        sum(case when metric = 'admin_active_users_28d' then step else 0 end) as admin_active_users_28d,
        {%- for metric, kind, first_back, last_back in feature_windows %}
        sum(case when metric = '{{ metric }}' then step else 0 end) as {{ metric }},
        {%- endfor %}
        max(case when metric in ('active', 'admin_active') then day_number end) as active_day_number,
        max(case when metric = 'admin_active' then day_number end) as admin_active_day_number
    from steps
    group by account_id, day_number

),

distinct_running as (

    select
        account_id,
        day_number,
        {%- for window, first_back, last_back in user_windows %}
        cast(sum(active_users_{{ window }}) over (
            partition by account_id order by day_number asc nulls last
            rows between unbounded preceding and current row
        ) as bigint) as active_users_{{ window }},
        {%- endfor %}
        {%- for metric in ['admin_active_users_28d'] + feature_windows | map(attribute=0) | list %}
        cast(sum({{ metric }}) over (
            partition by account_id order by day_number asc nulls last
            rows between unbounded preceding and current row
        ) as bigint) as {{ metric }},
        {%- endfor %}
        max(active_day_number) over (
            partition by account_id order by day_number asc nulls last {{ day_frame(89, 0) }}
        ) as last_active_day_number,
        max(admin_active_day_number) over (
            partition by account_id order by day_number asc nulls last {{ day_frame(89, 0) }}
        ) as last_admin_active_day_number
    from step_days

),

measured as (

    select
        engagement_windows.account_id,
        engagement_windows.as_of_date,
        {%- for name, data_type in summed %}
            {%- for window, first_back, last_back in windows %}
                engagement_windows.{{ name }}_{{ window }},
            {%- endfor %}
        {%- endfor %}
        engagement_windows.missing_days_7d,
        engagement_windows.missing_days_28d,
        engagement_windows.window_first_date,
        -- distinct counts are known where their window's events are (activity for users, feature
        -- events for features, user roles for admins); zero there means none, NULL unknown
        {%- for window, first_back, last_back in user_windows %}
            case
                when engagement_windows.portal_events_{{ window }} is not null
                    then coalesce(distinct_running.active_users_{{ window }}, 0)
            end as active_users_{{ window }},
        {%- endfor %}
            case
                when engagement_windows.portal_events_28d is not null and account_roles.has_user_roles
                    then coalesce(distinct_running.admin_active_users_28d, 0)
            end as admin_active_users_28d,
        {%- for metric, kind, first_back, last_back in feature_windows %}
            case
                when engagement_windows.{{ 'premium_feature_events' if kind == 'premium' else 'feature_events' }}_{{ '28d' if first_back == 27 else 'prev_28d' }} is not null
                    then coalesce(distinct_running.{{ metric }}, 0)
            end as {{ metric }},
        {%- endfor %}
        -- no activity in the 90-day window: count from the window's first day (at most 90)
        coalesce(
            cast(engagement_windows.day_number - distinct_running.last_active_day_number as integer),
            {{ days_between('engagement_windows.window_first_date', 'engagement_windows.as_of_date') }} + 1
        ) as days_since_last_activity,
        -- an account without a known admin user has no admin recency (NULL), not the window length
        case
            when account_roles.has_admin then coalesce(
                cast(engagement_windows.day_number - distinct_running.last_admin_active_day_number as integer),
                {{ days_between('engagement_windows.window_first_date', 'engagement_windows.as_of_date') }} + 1
            )
        end as days_since_admin_activity,
        account_versions.plan,
        account_versions.segment,
        account_versions.seats,
        account_versions.arr,
        account_versions.renewal_date,
        account_versions.csm_email,
        account_versions.manager_email
    from engagement_windows
    left join distinct_running
        on
            engagement_windows.account_id = distinct_running.account_id
            and engagement_windows.day_number = distinct_running.day_number
    inner join account_versions
        on
            engagement_windows.account_id = account_versions.account_id
            and (engagement_windows.as_of_date >= account_versions.valid_from or account_versions.version_number = 1)
            and (account_versions.valid_to is null or engagement_windows.as_of_date < account_versions.valid_to)
    left join account_roles
        on engagement_windows.account_id = account_roles.account_id

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
            when window_first_date <= {{ add_days(-55, 'as_of_date') }} then
                cast(portal_events_28d - portal_events_prev_28d as double) / nullif(portal_events_prev_28d, 0)
        end as portal_events_trend_28d,
        case
            when window_first_date <= {{ add_days(-13, 'as_of_date') }} then
                cast(logins_7d - logins_prev_7d as double) / nullif(logins_prev_7d, 0)
        end as wow_logins_change,
        cast(active_users_28d as double) / nullif(seats, 0) as seat_utilisation,
        {{ days_between('as_of_date', 'renewal_date') }} as days_to_renewal,
        missing_days_7d = 0 as is_data_complete
    from measured

),

weighted as (

    -- components whose inputs are unknown are left out; the others' weights are re-normalised
    select
        *,
        {{ health_weight_used(settings) }} as health_weight_used,
        {{ health_components_used(settings) }} as health_components_used
    from derived

),

scored as (

    select
        *,
    {%- for name in components %}
        {{ health_component_points(name, settings) }} as score_{{ name }}{{ ',' if not loop.last }}  -- noqa: LT02
    {%- endfor %}
    from weighted

),

final as (

    select
        *,
        case when health_components_used > 0 then cast(round(
            {%- for name in components %} coalesce(score_{{ name }}, 0){{ ' +' if not loop.last }}{% endfor %}, 1
        ) as decimal(5, 1)) end as health_score
    from scored

)

select
    final.*,
    {{ health_tier('final.health_score', settings) }} as health_tier,
    -- dormant (silent for var dormant_after_days days): not scored, not alerted
    dormancy.account_id is not null as is_dormant,
    dormancy.dormant_since_date,
    {{ days_between('dormancy.dormant_since_date', 'final.as_of_date') }} as days_dormant
from final
left join {{ ref('account_dormancy') }} as dormancy
    on
        final.account_id = dormancy.account_id
        and final.as_of_date >= dormancy.dormant_since_date
        and (dormancy.returned_on_date is null or final.as_of_date < dormancy.returned_on_date)
