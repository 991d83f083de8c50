-- Point-in-time training and scoring frame on a weekly grid (Mondays) plus the run's as-of date:
-- account_health's measures, longer windows (up to 365 days), tenure, activity relative to the
-- account's own history, user counts, days since each kind of activity, and the labels.
-- Features read only data on or before the row's as_of_date; labels read only the label window
-- after it. No row is kept or dropped because of what happens after its as_of_date: the
-- population flags are facts of the past, and observability depends on the dates alone.
-- A kind of data the warehouse does not hold at all (no sessions, documents, features, CSM
-- emails or user roles anywhere) gives NULL features, never zeros.
{%- set churn_days = var('churn_horizon_days') | int %}
{%- set expand_days = var('expand_horizon_days') | int %}
{%- set inactive_days = var('dormant_after_days') | int %}
{%- set lookback_days = var('active_lookback_days') | int %}
{#- health column -> the kind of data it needs (none = always present) -#}
{%- set health_features = [
    ('active_users_7d', none), ('active_users_28d', none), ('active_users_90d', none),
    ('active_users_prev_28d', none), ('active_users_trend_28d', none),
    ('logins_7d', 'sessions'), ('logins_28d', 'sessions'), ('logins_90d', 'sessions'),
    ('logins_prev_28d', 'sessions'), ('logins_trend_28d', 'sessions'),
    ('wow_logins_change', 'sessions'),
    ('session_minutes_7d', 'sessions'), ('session_minutes_28d', 'sessions'),
    ('session_minutes_90d', 'sessions'),
    ('docs_viewed_28d', 'documents'), ('docs_downloaded_28d', 'documents'),
    ('docs_shared_28d', 'documents'), ('docs_uploaded_28d', 'documents'),
    ('docs_commented_28d', 'documents'),
    ('feature_events_28d', 'features'), ('premium_feature_events_28d', 'features'),
    ('feature_breadth_28d', 'features'), ('feature_breadth_prev_28d', 'features'),
    ('premium_feature_breadth_28d', 'features'),
    ('csm_emails_opened_28d', 'emails'), ('csm_emails_clicked_28d', 'emails'),
    ('admin_active_users_28d', 'roles'),
    ('seat_utilisation', none), ('days_to_renewal', none), ('seats', none), ('arr', none),
    ('missing_days_28d', none), ('health_score', none),
] %}
{%- set windows = [7, 28, 90, 180, 365] %}
{%- set user_windows = [180, 365] %}
{#- days since the last activity of each kind: (feature, series flag, kind) -#}
{%- set recency = [
    ('days_since_last_activity', 'is_active', none),
    ('days_since_last_session', 'had_session', 'sessions'),
    ('days_since_last_document', 'had_document', 'documents'),
    ('days_since_last_feature_use', 'had_feature', 'features'),
    ('days_since_last_csm_email', 'had_email', 'emails'),
    ('days_since_admin_activity', 'had_admin', 'roles'),
] %}
{#- `{}` stands for the date; `replace`, not `format`: Spark's datediff repeats its argument. #}
{%- set day_number = "cast(" ~ dbt.datediff("cast('2000-01-01' as date)", '{}', 'day') ~ " as integer)" %}

with

health as (

    select * from {{ ref('account_health') }}

),

outcomes as (

    -- outcomes known by the run's as-of date only
    select * from {{ ref('stg_raw__outcomes') }}
    where effective_date <= {{ as_of_date() }}

),

user_days as (

    select * from {{ ref('int_user_days_aggregated') }}
    where activity_date <= {{ as_of_date() }}

),

engagement as (

    select * from {{ ref('fct_account_daily_engagement') }}
    where
        is_data_landed
        and activity_date <= {{ as_of_date() }}

),

account_versions as (

    select * from {{ ref('dim_accounts_history') }}

),

run_date as (

    select {{ as_of_date() }} as run_as_of_date

),

churns as (

    select
        account_id,
        min(effective_date) as churned_date
    from outcomes
    where outcome = 'churned'
    group by account_id

),

grid as (

    select
        health.*,
        {{ day_number.replace('{}', 'health.as_of_date') }} as day_number
    from health
    cross join run_date
    left join churns
        on health.account_id = churns.account_id
    -- rows after the run's as-of date (left by a later run) are not part of this run's frame,
    -- and an account that has churned is no longer a customer to predict for
    where
        health.as_of_date <= run_date.run_as_of_date
        and (churns.churned_date is null or health.as_of_date < churns.churned_date)
        and (
            health.as_of_date = cast({{ dbt.date_trunc('week', 'health.as_of_date') }} as date)
            or health.as_of_date = run_date.run_as_of_date
        )

),

kinds as (

    -- which kinds of data exist at all (else their features are NULL, not zero)
    select
        coalesce(max(case when logins > 0 then 1 end), 0) = 1 as has_sessions,
        coalesce(max(case
            when docs_viewed + docs_downloaded + docs_shared + docs_uploaded + docs_commented > 0 then 1
        end), 0) = 1 as has_documents,
        coalesce(max(case when feature_events > 0 then 1 end), 0) = 1 as has_features,
        coalesce(max(case when csm_emails_opened + csm_emails_clicked > 0 then 1 end), 0) = 1 as has_emails,
        coalesce(max(case when admin_active_users > 0 then 1 end), 0) = 1 as has_roles
    from engagement

),

account_days as (

    -- one row per account and day with any activity, and what kind of activity it was
    select
        account_id,
        activity_date,
        cast(count(case when is_active then 1 end) as integer) as active_users,
        cast(sum(portal_events) as double) as events,
        max(case when is_active and is_admin then 1 else 0 end) as had_admin
    from user_days
    group by account_id, activity_date
    having count(case when is_active then 1 end) > 0

),

activity as (

    select
        account_days.account_id,
        {{ day_number.replace('{}', 'account_days.activity_date') }} as day_number,
        0 as is_grid,
        1 as is_active,
        account_days.events,
        account_days.had_admin,
        case when engagement.logins > 0 then 1 else 0 end as had_session,
        case
            when engagement.docs_viewed + engagement.docs_downloaded + engagement.docs_shared
                + engagement.docs_uploaded + engagement.docs_commented > 0 then 1
            else 0
        end as had_document,
        case when engagement.feature_events > 0 then 1 else 0 end as had_feature,
        case when engagement.csm_emails_opened + engagement.csm_emails_clicked > 0 then 1 else 0 end as had_email
    from account_days
    left join engagement
        on
            account_days.account_id = engagement.account_id
            and account_days.activity_date = engagement.activity_date

),

series as (

    -- activity days and grid days in one series per account, for RANGE windows over day numbers
    select * from activity
    union all
    select
        account_id,
        day_number,
        1 as is_grid,
        0 as is_active,
        cast(0 as double) as events,
        0 as had_admin,
        0 as had_session,
        0 as had_document,
        0 as had_feature,
        0 as had_email
    from grid

),

windowed as (

    select
        account_id,
        day_number,
        is_grid,
        {%- for w in windows %}
        cast(sum(is_active) over (
            partition by account_id order by day_number asc nulls last {{ day_frame(w - 1, 0) }}
        ) as double) as active_days_{{ w }}d,
        cast(sum(events) over (
            partition by account_id order by day_number asc nulls last {{ day_frame(w - 1, 0) }}
        ) as double) as events_{{ w }}d,
        {%- endfor %}
        cast(sum(is_active) over (
            partition by account_id order by day_number asc nulls last
            range between unbounded preceding and current row
        ) as double) as active_days_total,
        min(case when is_active = 1 then day_number end) over (
            partition by account_id order by day_number asc nulls last
            range between unbounded preceding and current row
        ) as first_active_day_number,
        {%- for name, flag, kind in recency %}
        max(case when {{ flag }} = 1 then day_number end) over (
            partition by account_id order by day_number asc nulls last
            range between unbounded preceding and current row
        ) as last_{{ flag }}_day_number,
        {%- endfor %}
        -- the label window: the first activity strictly after the row's day
        min(case when is_active = 1 then day_number end) over (
            partition by account_id order by day_number asc nulls last
            range between 1 following and unbounded following
        ) as next_active_day_number
    from series

),

user_runs as (

    -- each user's active days, with the previous one
    select
        account_id,
        user_id,
        {{ day_number.replace('{}', 'activity_date') }} as day_number,
        lag({{ day_number.replace('{}', 'activity_date') }}) over (
            partition by account_id, user_id order by activity_date asc nulls last
        ) as previous_day_number
    from user_days
    where is_active

),

{%- for w in user_windows %}

user_islands_{{ w }} as (

    -- a user counts in a w-day window from an active day until w days after the last one of a
    -- run of active days less than w days apart: one interval per run, so a count is a join
    select
        account_id,
        user_id,
        min(day_number) as first_day_number,
        max(day_number) + {{ w - 1 }} as last_counted_day_number
    from (
        select
            *,
            sum(case when previous_day_number is null or day_number - previous_day_number >= {{ w }} then 1 else 0 end)
                over (
                    partition by account_id, user_id order by day_number asc nulls last
                    rows between unbounded preceding and current row
                ) as island
        from user_runs
    ) as numbered
    group by account_id, user_id, island

),

user_counts_{{ w }} as (

    select
        grid.account_id,
        grid.as_of_date,
        cast(count(*) as double) as active_users_{{ w }}d
    from grid
    inner join user_islands_{{ w }} as islands
        on
            grid.account_id = islands.account_id
            and grid.day_number between islands.first_day_number and islands.last_counted_day_number
    group by grid.account_id, grid.as_of_date

),
{%- endfor %}

starts as (

    select
        account_id,
        {{ day_number.replace('{}', 'min(contract_start_date)') }} as start_day_number
    from account_versions
    group by account_id

),

labels as (

    select
        grid.account_id,
        grid.as_of_date,
        max(case
            when
                outcomes.outcome = 'churned'
                and outcomes.effective_date <= {{ add_days(churn_days, 'grid.as_of_date') }}
                then 1
            else 0
        end) as label_churn,
        max(case
            when
                outcomes.outcome = 'expanded'
                and outcomes.effective_date <= {{ add_days(expand_days, 'grid.as_of_date') }}
                then 1
            else 0
        end) as label_expand
    from grid
    inner join outcomes
        on
            grid.account_id = outcomes.account_id
            and grid.as_of_date < outcomes.effective_date
    group by grid.account_id, grid.as_of_date

),

final as (

    select
        grid.account_id,
        grid.as_of_date,
        {%- for feature, kind in health_features %}
            {%- if kind %}
        case when kinds.has_{{ kind }} then cast(grid.{{ feature }} as double) end as {{ feature }},
            {%- else %}
        cast(grid.{{ feature }} as double) as {{ feature }},
            {%- endif %}
        {%- endfor %}
        {%- for w in windows %}
        windowed.active_days_{{ w }}d,
        windowed.events_{{ w }}d,
        {%- endfor %}
        {%- for w in user_windows %}
        coalesce(user_counts_{{ w }}.active_users_{{ w }}d, 0.0) as active_users_{{ w }}d,
        {%- endfor %}
        -- activity relative to the account's own history (1 = its usual pace over the last
        -- year, or over its life if shorter); NULL without activity to compare with
        (windowed.events_28d / 28.0) / nullif(
            windowed.events_365d / least(365, windowed.day_number - windowed.first_active_day_number + 1), 0
        ) as events_28d_vs_history,
        (windowed.active_days_90d / 90.0) / nullif(
            windowed.active_days_365d / least(365, windowed.day_number - windowed.first_active_day_number + 1), 0
        ) as active_days_90d_vs_history,
        cast(grid.active_users_28d as double) / nullif(coalesce(user_counts_365.active_users_365d, 0.0), 0)
            as active_users_28d_vs_365d,
        -- days since the contract started or the first activity, whichever came first
        cast(windowed.day_number - least(
            coalesce(starts.start_day_number, windowed.first_active_day_number),
            coalesce(windowed.first_active_day_number, starts.start_day_number)
        ) as double) as tenure_days,
        windowed.active_days_total,
        cast(windowed.day_number - windowed.first_active_day_number as double) as days_since_first_activity,
        cast(windowed.last_is_active_day_number - windowed.first_active_day_number as double)
            as days_first_to_last_activity,
        {%- for name, flag, kind in recency %}
            {%- if kind %}
        case when kinds.has_{{ kind }} then cast(windowed.day_number - windowed.last_{{ flag }}_day_number as double) end as {{ name }},
            {%- else %}
        cast(windowed.day_number - windowed.last_{{ flag }}_day_number as double) as {{ name }},
            {%- endif %}
        {%- endfor %}
        grid.is_dormant,
        -- the inactivity churn population: active within var active_lookback_days, not dormant
        coalesce(windowed.day_number - windowed.last_is_active_day_number < {{ lookback_days }}, false)
            and not grid.is_dormant as is_in_population,
        cast(coalesce(labels.label_churn, 0) as integer) as label_churn,
        cast(coalesce(labels.label_expand, 0) as integer) as label_expand,
        -- a label is only trustworthy once both horizons have fully passed
        {{ add_days([churn_days, expand_days] | max, 'grid.as_of_date') }} <= run_date.run_as_of_date
            as is_label_observable,
        -- inactivity churn: no activity in the var dormant_after_days days after as_of_date;
        -- NULL until those days have all passed
        case
            when {{ add_days(inactive_days, 'grid.as_of_date') }} <= run_date.run_as_of_date then
                cast(case
                    when
                        windowed.next_active_day_number is null
                        or windowed.next_active_day_number - windowed.day_number > {{ inactive_days }}
                        then 1
                    else 0
                end as integer)
        end as label_inactive,
        {{ add_days(inactive_days, 'grid.as_of_date') }} <= run_date.run_as_of_date
            as is_inactive_label_observable
    from grid
    cross join run_date
    cross join kinds
    inner join windowed
        on
            grid.account_id = windowed.account_id
            and grid.day_number = windowed.day_number
            and windowed.is_grid = 1
    {%- for w in user_windows %}
    left join user_counts_{{ w }}
        on
            grid.account_id = user_counts_{{ w }}.account_id
            and grid.as_of_date = user_counts_{{ w }}.as_of_date
    {%- endfor %}
    left join starts
        on grid.account_id = starts.account_id
    left join labels
        on
            grid.account_id = labels.account_id
            and grid.as_of_date = labels.as_of_date

)

select * from final
