"""The inbox's published snapshot: a small DuckDB file the pipeline writes and the app reads.

The pipeline holds the warehouse's writer lock during runs, and any open connection to the
warehouse file (even read-only) would block the pipeline. So the app never opens the warehouse:
the pipeline copies what the inbox shows (recent alerts, who may see each, the accounts' latest
metrics, opted-out users to hide, the audit trail) into a new file and swaps it in with one
atomic rename. A reader keeps the file it opened until it looks again; the next look sees the
new one. This file holds people's emails: it is the app's, not an analyst surface.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from alerts.recipients import People, account_scopes, alert_audience
from notifications.content import crm_links, user_privacy
from warehouse.catalog import table_exists
from warehouse.publish import publish_snapshot

SNAPSHOT_VERSION = 1
# Closed alerts stay in the inbox this long (the "recently closed" view and the action pages).
KEEP_CLOSED_DAYS = 30
TABLES = (
    "meta",
    "alerts",
    "audience",
    "people",
    "metrics",
    "audit",
    "hidden",
    "champions",
    "crm_links",
)


def publish_app_snapshot(
    con, path: str | Path, people: People, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Write the inbox snapshot from the warehouse connection `con` to `path`, atomically
    (warehouse.publish: a new file renamed into place, one consistent state of the warehouse).

    Returns counts for the run's metadata. Raises RuntimeError naming the missing table when
    the alerts have not been built yet.
    """
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if not table_exists(con, "alerts", "alerts"):
        raise RuntimeError("alerts.alerts does not exist yet: materialize alerts/alerts first")
    has_dim = table_exists(con, "marts", "dim_accounts")
    dim = (
        "left join (select account_id, any_value(csm_email) as csm_email, "
        "any_value(manager_email) as manager_email, any_value(csm_name) as csm_name "
        "from marts.dim_accounts group by account_id) d using (account_id)"
        if has_dim
        else "left join (select null::varchar as account_id, null::varchar as csm_email, "
        "null::varchar as manager_email, null::varchar as csm_name) d using (account_id)"
    )
    since = (now - dt.timedelta(days=KEEP_CLOSED_DAYS)).isoformat(sep=" ")
    kept_sql = f"""
        select a.* exclude (account_name),
               coalesce(a.account_name,
                        case when a.account_id = '*' then 'All accounts (data)'
                             else a.account_id end) as account_name,
               d.csm_email, d.manager_email, d.csm_name
        from alerts.alerts a {dim}
        where not coalesce(a.is_holdout, false)
          and (a.status in ('open', 'acknowledged')
               or coalesce(a.resolved_at, a.updated_at) >= timestamp '{since}')
    """
    kept = {r[0] for r in con.execute(f"select alert_id from ({kept_sql})").fetchall()}
    audience = [(r, role, a) for r, role, a in alert_audience(con, people) if a in kept and r]
    # Everyone who may sign in: a book, a team, a stand-in duty, or an alert routed to them.
    roles: dict[str, str] = {}
    rank = {"csm": 1, "manager": 2, "admin": 3}
    scopes = account_scopes(con, people) if has_dim else []
    for email, role, _ in scopes + audience:
        if email and rank.get(role, 0) > rank.get(roles.get(email, ""), 0):
            roles[email] = role
    for admin in people.admins:
        roles[admin] = "admin"
    champions, hidden = user_privacy(con)
    as_of = con.execute(f"select max(last_seen_on) from ({kept_sql})").fetchall()[0][0]
    frames = {
        "audience": pd.DataFrame(audience, columns=["recipient", "role", "alert_id"]),
        "people": pd.DataFrame(sorted(roles.items()), columns=["email", "role"]),
        "hidden": pd.DataFrame({"token": sorted(hidden)}),
        "champions": pd.DataFrame(sorted(champions.items()), columns=["account_id", "email"]),
        "crm_links": pd.DataFrame(sorted(crm_links(con).items()), columns=["alert_id", "url"]),
        "meta": pd.DataFrame(
            {"published_at": [now], "as_of_date": [as_of], "version": [SNAPSHOT_VERSION]}
        ),
    }
    views = {name: f"_ea_app_snapshot_{name}" for name in frames}
    tables = {f"main.{name}": f"select * from {views[name]}" for name in frames}
    tables["main.alerts"] = kept_sql
    if table_exists(con, "marts", "account_health"):
        tables["main.metrics"] = f"""
            with latest as (
                select * from marts.account_health
                where account_id in (select distinct account_id from ({kept_sql}))
                qualify row_number() over (partition by account_id order by as_of_date desc) = 1
            )
            select l.*, p.health_score as health_score_prev_28d
            from latest l
            left join marts.account_health p
              on p.account_id = l.account_id and p.as_of_date = l.as_of_date - interval 28 day
        """
    else:
        tables["main.metrics"] = "select null::varchar as account_id, null::date as as_of_date"
    if table_exists(con, "alerts", "audit_log"):
        tables["main.audit"] = f"""
            select alert_id, event, from_status, to_status, actor, reason, event_at, details_json
            from alerts.audit_log
            where alert_id in (select alert_id from ({kept_sql}))
            qualify row_number() over (partition by alert_id order by event_at desc) <= 50
        """
    else:
        tables["main.audit"] = (
            "select null::varchar as alert_id, null::varchar as event, "
            "null::varchar as from_status, null::varchar as to_status, null::varchar as actor, "
            "null::varchar as reason, null::timestamp as event_at, null::varchar as details_json "
            "where false"
        )
    for name, frame in frames.items():
        con.register(views[name], frame)
    try:
        result = publish_snapshot(con, path, tables)
    finally:
        for view in views.values():
            con.unregister(view)
    return {
        "alerts": len(kept),
        "audience_rows": len(audience),
        "people": len(roles),
        "as_of_date": str(as_of) if as_of else None,
        "seconds": round(result.seconds, 3),
        "bytes": result.bytes,
    }


@dataclass
class SnapshotReader:
    """Read access to the published snapshot for a long-running app.

    `cursor()` gives a cursor for one request (DuckDB cursors are safe to use from one thread
    each); the file is reopened when the pipeline has published a new one.
    """

    path: Path
    _con: Any = None
    _stamp: tuple | None = None

    def _current_stamp(self) -> tuple | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    @property
    def stamp(self) -> tuple | None:
        """Identity of the file last opened (changes when a new snapshot is published)."""
        return self._stamp

    def available(self) -> bool:
        return self._current_stamp() is not None

    def cursor(self):
        stamp = self._current_stamp()
        if stamp is None:
            raise SnapshotMissing(
                f"no inbox snapshot at {self.path} yet: run the pipeline (the inbox/snapshot "
                "asset publishes it) or set EA_APP_SNAPSHOT"
            )
        if stamp != self._stamp or self._con is None:
            # A fresh in-memory database attaching the file: duckdb.connect(path) would hand
            # back the process's cached instance of the old file. The old connection is
            # dropped, not closed: a request may still be reading it.
            con = duckdb.connect()
            con.execute(
                "attach '" + self.path.as_posix().replace("'", "''") + "' as snap (read_only)"
            )
            con.execute("set enable_external_access = false")
            con.execute("set lock_configuration = true")
            self._con, self._stamp = con, stamp
        cur = self._con.cursor()
        cur.execute("use snap")
        return cur


class SnapshotMissing(RuntimeError):
    """The pipeline has not published an inbox snapshot yet (the message says how to)."""
