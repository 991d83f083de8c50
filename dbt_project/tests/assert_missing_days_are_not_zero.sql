-- A day whose data has not landed carries no measures: unknown must never read as zero.
select account_id, activity_date
from {{ ref('fct_account_daily_engagement') }}
where not is_data_landed
    and (active_users is not null or logins is not null or session_minutes is not null)
