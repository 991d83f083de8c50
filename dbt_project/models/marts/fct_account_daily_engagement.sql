-- One row per account per day from the account's start (or the first landed day) to the as-of
-- date, zero-activity days included. Days whose data has not landed have is_data_landed = false
-- and NULL measures, so a missing day is never read as a quiet day; so are measures the data
-- cannot give (no session events in the log: no logins; no user roles: no admin counts).
{{
    config(
        materialized='incremental',
        incremental_strategy='microbatch',
        event_time='activity_date',
        batch_size=var('microbatch_size'),
        begin=var('history_start'),
        lookback=5,
    )
}}

{#- name, expression, type, and what must be known for the measure to mean anything: the event
    type it counts (an event type the log has not carried up to that day leaves the measure
    NULL), 'roles' (user roles from snapshots), or none (any landed day). -#}
{%- set measures = [
    ('active_users', 'user_totals.active_users', 'bigint', none),
    ('portal_events', 'user_totals.portal_events', 'bigint', none),
    ('logins', 'user_totals.logins', 'bigint', 'session_started'),
    ('session_minutes', 'user_totals.session_minutes', 'decimal(14, 2)', 'session_ended_with_duration'),
    ('docs_viewed', 'documents.docs_viewed', 'bigint', 'document_viewed'),
    ('docs_downloaded', 'documents.docs_downloaded', 'bigint', 'document_downloaded'),
    ('docs_shared', 'documents.docs_shared', 'bigint', 'document_shared'),
    ('docs_uploaded', 'documents.docs_uploaded', 'bigint', 'document_uploaded'),
    ('docs_commented', 'documents.docs_commented', 'bigint', 'document_commented'),
    ('features_used', 'feature_totals.features_used', 'bigint', 'feature_used'),
    ('feature_events', 'feature_totals.feature_events', 'bigint', 'feature_used'),
    ('premium_feature_events', 'feature_totals.premium_feature_events', 'bigint', 'feature_used'),
    ('csm_emails_opened', 'user_totals.csm_emails_opened', 'bigint', 'csm_email_opened'),
    ('csm_emails_clicked', 'user_totals.csm_emails_clicked', 'bigint', 'csm_email_clicked'),
    ('admin_active_users', 'user_totals.admin_active_users', 'bigint', 'roles'),
] %}
{%- set event_types = measures | map(attribute=3) | reject('none') | reject('equalto', 'roles') | unique | list %}

with

calendar as (

    -- filtered to the batch's days by dbt
    select calendar_date from {{ ref('int_days_enumerated') }}

),

account_versions as (

    select * from {{ ref('dim_accounts_history') }}

),

landed_partitions as (

    select * from {{ ref('stg_raw__landed_partitions') }}
    where source_name in ('events', 'history')

),

outcomes as (

    select * from {{ ref('stg_raw__outcomes') }}
    where effective_date <= {{ as_of_date() }}

),

user_days as (

    select * from {{ ref('int_user_days_aggregated') }}

),

documents as (

    select * from {{ ref('int_document_interactions_aggregated') }}

),

feature_days as (

    select * from {{ ref('int_feature_usage_aggregated') }}

),

landed_days as (

    select
        landing_date,
        max(loaded_at) as loaded_at
    from landed_partitions
    group by landing_date

),

first_landed as (

    select min(landing_date) as first_landed_date from landed_days

),

account_starts as (

    -- the contract start from the CRM; an account known only from its events starts with them
    select
        account_id,
        min(case when has_crm_record then contract_start_date else valid_from end)
            as contract_start_date
    from account_versions
    group by account_id

),

churns as (

    select
        account_id,
        min(effective_date) as churned_date
    from outcomes
    where outcome = 'churned'
    group by account_id

),

spine as (

    -- an account has a row on each day it is a customer and does not refuse tracking
    select
        account_versions.account_id,
        calendar.calendar_date as activity_date
    from calendar
    inner join account_versions
        on
            (calendar.calendar_date >= account_versions.valid_from or account_versions.version_number = 1)
            and (account_versions.valid_to is null or calendar.calendar_date < account_versions.valid_to)
    inner join account_starts
        on account_versions.account_id = account_starts.account_id
    cross join first_landed
    left join churns
        on account_versions.account_id = churns.account_id
    where
        -- unknown consent (no CRM record): the event log was given to us to be used
        (account_versions.has_tracking_consent or account_versions.has_tracking_consent is null)
        and calendar.calendar_date >= coalesce(account_starts.contract_start_date, first_landed.first_landed_date)
        and calendar.calendar_date >= first_landed.first_landed_date
        and (churns.churned_date is null or calendar.calendar_date <= churns.churned_date)

),

event_types as (

    -- one row: the first day of each event type in the log
    select
    {%- for event_type in event_types %}
        min(case when event_name = '{{ event_type }}' then first_event_date end) as first_{{ event_type }}{{ ',' if not loop.last }}  -- noqa: LT02
    {%- endfor %}
    from {{ ref('int_event_types_first_seen') }}

),

account_roles as (

    select * from {{ ref('int_account_roles') }}

),

user_totals as (

    select
        account_id,
        activity_date,
        count(case when is_active then 1 end) as active_users,
        count(case when is_active and is_admin then 1 end) as admin_active_users,
        sum(portal_events) as portal_events,
        sum(sessions) as logins,
        sum(session_minutes) as session_minutes,
        sum(csm_emails_opened) as csm_emails_opened,
        sum(csm_emails_clicked) as csm_emails_clicked
    from user_days
    group by account_id, activity_date

),

feature_totals as (

    select
        account_id,
        activity_date,
        count(distinct feature_name) as features_used,
        sum(feature_events) as feature_events,
        sum(case when is_premium then feature_events else 0 end) as premium_feature_events
    from feature_days
    group by account_id, activity_date

),

final as (

    select
        spine.account_id,
        spine.activity_date,
        landed_days.landing_date is not null as is_data_landed,
    {%- for name, expression, data_type, needs in measures %}
        case
            when
                landed_days.landing_date is not null
                {%- if needs == 'roles' %}
                and account_roles.has_user_roles
                {%- elif needs %}
                and event_types.first_{{ needs }} <= spine.activity_date
                {%- endif %}
                then cast(coalesce({{ expression }}, 0) as {{ data_type }})
        end as {{ name }}{{ ',' if not loop.last }}  -- noqa: LT02
    {%- endfor %}
    from spine
    cross join event_types
    left join account_roles
        on spine.account_id = account_roles.account_id
    left join landed_days
        on spine.activity_date = landed_days.landing_date
    left join user_totals
        on
            spine.account_id = user_totals.account_id
            and spine.activity_date = user_totals.activity_date
    left join documents
        on
            spine.account_id = documents.account_id
            and spine.activity_date = documents.activity_date
    left join feature_totals
        on
            spine.account_id = feature_totals.account_id
            and spine.activity_date = feature_totals.activity_date

)

select * from final
