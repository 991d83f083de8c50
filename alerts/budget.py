"""Alert budget: each owner gets their most important new alerts one by one, the rest summed up."""

from __future__ import annotations

from alerts.inputs import WHOLE_WAREHOUSE
from alerts.rules import Routing


def apply_budget(con, routing: Routing, as_of) -> dict[str, int]:
    """Roll the new alerts past each owner's daily budget into the digest summary (critical and
    other exempt severities never); returns how many per owner.
    """
    exempt = routing.budget_exempt_severities or ["\x00none"]
    marks = ", ".join("?" for _ in exempt)
    con.execute(
        f"""
        update alerts.alerts a set in_digest_summary = r.over
        from (
            select alert_id,
                row_number() over (
                    partition by owner_email
                    order by case severity when 'critical' then 0 when 'high' then 1
                             when 'medium' then 2 else 3 end,
                             priority desc nulls last, alert_id
                ) > ? and severity not in ({marks}) as over
            from alerts.alerts
            where first_raised_on = ? and status in ('open', 'acknowledged')
              and account_id != '{WHOLE_WAREHOUSE}'
        ) r
        where a.alert_id = r.alert_id
        """,
        [routing.daily_budget_per_owner, *exempt, as_of],
    )
    return dict(
        con.execute(
            """
            select owner_email, count(*) from alerts.alerts
            where first_raised_on = ? and in_digest_summary group by 1 order by 2 desc
            """,
            [as_of],
        ).fetchall()
    )
