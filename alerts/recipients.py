"""Who is responsible for an alert and who may see it: one fallback chain, one scope model.

Every surface (the engine's routing, digests, critical mail, escalations, the second channel,
the command line, the inbox) asks this module, so nobody is told about an alert they may not
see, and no alert is left without a person:

- Responsible person, first present: the route owner (a `routes:` override or the rule's
  `routing.owner`) -> the account's CSM -> the team manager -> `unassigned_owner` -> the data
  team. Escalation: the route's escalation -> the team manager -> `default_escalation` -> the
  data team.
- Scope: an admin sees every alert; a manager their team's accounts (`manager_email`); a CSM
  their own book (`csm_email`); `unassigned_owner` the accounts without a CSM,
  `default_escalation` those without a manager, the data team the warehouse-wide alerts; and
  anyone an alert was routed or escalated to sees that alert. Nobody else sees anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from warehouse.catalog import table_columns, table_exists

WHOLE_WAREHOUSE = "*"  # account_id of warehouse-wide (data freshness) alerts
ROLES = ("csm", "manager", "admin")
# Where each link of the chain comes from, as recorded with a delivery and in the audit log.
CHAIN = ("route_owner", "csm", "manager", "unassigned_owner", "data_team")
ESCALATION_CHAIN = ("route_escalation", "manager", "default_escalation", "data_team")


@dataclass(frozen=True)
class People:
    """The addresses config/routing.yml names (lower case): stand-ins, admins, managers."""

    data_team: str | None = None
    unassigned_owner: str | None = None
    default_escalation: str | None = None
    admins: tuple[str, ...] = ()
    managers: tuple[str, ...] = ()

    @classmethod
    def from_routing(cls, routing: Any) -> People:
        """From a parsed `Routing`, a raw routing.yml mapping, or None (nobody configured)."""
        if routing is None:
            return cls()
        if isinstance(routing, Mapping):
            get = routing.get
        else:

            def get(key, default=None):
                return getattr(routing, key, default)

        def one(key: str) -> str | None:
            value = get(key)
            return str(value).strip().lower() or None if value else None

        def many(key: str) -> tuple[str, ...]:
            value = get(key) or []
            if isinstance(value, Mapping):  # {"emails": [...]} style
                value = value.get("emails", [])
            return tuple(str(v).strip().lower() for v in value if v)

        return cls(
            data_team=one("data_team"),
            unassigned_owner=one("unassigned_owner"),
            default_escalation=one("default_escalation"),
            admins=many("admins"),
            managers=many("managers"),
        )


def _clean(email: object) -> str | None:
    if email is None:
        return None
    text = str(email).strip().lower()
    return text or None


def resolve_target(target: str | None, account: Mapping[str, Any], people: People) -> str | None:
    """A routing target (`csm`, `manager`, `data_team` or an address) for one account."""
    if target is None:
        return None
    if target == "csm":
        return _clean(account.get("csm_email"))
    if target == "manager":
        return _clean(account.get("manager_email"))
    if target == "data_team":
        return people.data_team
    return _clean(target)


def owner_chain(
    route_owner: str | None, account: Mapping[str, Any], people: People
) -> list[tuple[str, str]]:
    """The fallback chain for the responsible person: [(link, address)] present, in order,
    without repeats. `route_owner` is a routing target or an address (None: no route).
    """
    links = (
        ("route_owner", resolve_target(route_owner, account, people)),
        ("csm", _clean(account.get("csm_email"))),
        ("manager", _clean(account.get("manager_email"))),
        ("unassigned_owner", people.unassigned_owner),
        ("data_team", people.data_team),
    )
    return _dedupe(links)


def escalation_chain(
    route_escalation: str | None, account: Mapping[str, Any], people: People
) -> list[tuple[str, str]]:
    """The chain for the escalation contact: route escalation -> manager -> default -> data."""
    links = (
        ("route_escalation", resolve_target(route_escalation, account, people)),
        ("manager", _clean(account.get("manager_email"))),
        ("default_escalation", people.default_escalation),
        ("data_team", people.data_team),
    )
    return _dedupe(links)


def _dedupe(links) -> list[tuple[str, str]]:
    out, seen = [], set()
    for link, email in links:
        if email and email not in seen:
            seen.add(email)
            out.append((link, email))
    return out


def responsible(
    route_owner: str | None, account: Mapping[str, Any], people: People
) -> tuple[str | None, str | None]:
    """(address, link) of the first present person of the owner chain; (None, None) only when
    routing.yml names neither `unassigned_owner` nor `data_team`.
    """
    chain = owner_chain(route_owner, account, people)
    return chain[0][::-1] if chain else (None, None)


def alert_recipients(alert: Mapping[str, Any], people: People) -> tuple[str | None, list[str]]:
    """(to, cc) for a message about one alert: its owner (the engine resolved the chain when it
    raised it), else the chain on the account as it is now; cc the escalation contact.
    """
    to = _clean(alert.get("owner_email")) or responsible(None, alert, people)[0]
    esc = _clean(alert.get("escalation_email"))
    return to, ([esc] if esc and esc != to else [])


def matching_route(routes: list[dict], facts: Mapping[str, Any]) -> dict | None:
    """The first `routes:` entry whose `match` holds for these facts (alert_type, severity,
    rule_id, segment, plan), or None.
    """
    for route in routes or []:
        if all(facts.get(k) == v for k, v in route["match"].items()):
            return route
    return None


def route(rule, row: Mapping[str, Any], routing) -> tuple[str, str]:
    """(owner, escalation) addresses for a rule firing on an account row (with csm_email,
    manager_email, segment, plan), through `routes:` and the fallback chains.
    """
    people = People.from_routing(routing)
    owner, escalation = rule.owner, rule.escalation
    facts = {
        "alert_type": rule.alert_type,
        "severity": rule.severity,
        "rule_id": rule.id,
        "segment": row.get("segment"),
        "plan": row.get("plan"),
    }
    override = matching_route(routing.routes, facts)
    if override is not None:
        owner = override.get("owner", owner)
        escalation = override.get("escalation", escalation)
    owner_email = responsible(owner, row, people)[0]
    chain = escalation_chain(escalation, row, people)
    esc_email = chain[0][1] if chain else None
    return owner_email, esc_email


# --- Scope ----------------------------------------------------------------------------------


def _table_columns(con, schema: str, table: str) -> set[str]:
    return {c.lower() for c in table_columns(con, schema, table)}


def accounts_sql(con) -> str | None:
    """SQL for (account_id, csm, mgr) now, lower case: marts.dim_accounts when it has the
    owner columns, else each account's latest marts.account_health row; None without either.
    """
    need = {"account_id", "csm_email", "manager_email"}
    if need <= _table_columns(con, "marts", "dim_accounts"):
        return (
            "select account_id, lower(any_value(csm_email)) as csm, "
            "lower(any_value(manager_email)) as mgr from marts.dim_accounts group by account_id"
        )
    if need | {"as_of_date"} <= _table_columns(con, "marts", "account_health"):
        return (
            "select account_id, lower(arg_max(csm_email, as_of_date)) as csm, "
            "lower(arg_max(manager_email, as_of_date)) as mgr "
            "from marts.account_health group by account_id"
        )
    return None


def _params(people: People) -> dict[str, Any]:
    return {
        "admins": list(people.admins),
        "unassigned": people.unassigned_owner,
        "default_escalation": people.default_escalation,
        "data_team": people.data_team,
    }


_SCOPES_CTE = """
    acc as ({acc}),
    scope_admins as (select unnest($admins::varchar[]) as email),
    scope_grants as (
        select csm as recipient, 'csm' as role, account_id from acc where csm is not null
        union all
        select mgr, 'manager', account_id from acc where mgr is not null
        union all
        select cast($unassigned as varchar), 'csm', account_id from acc
        where csm is null and $unassigned is not null
        union all
        select cast($default_escalation as varchar), 'manager', account_id from acc
        where mgr is null and $default_escalation is not null
        union all
        select cast($data_team as varchar), 'csm', '*' where $data_team is not null
        union all
        select scope_admins.email, 'admin', acc.account_id from scope_admins cross join acc
        union all
        -- warehouse-wide alerts (data freshness) belong to no account: admins only
        select email, 'admin', '*' from scope_admins
    ),
    scopes as (
        -- one role per person: the broadest they hold
        select distinct recipient,
            case max(case role when 'admin' then 3 when 'manager' then 2 else 1 end)
                     over (partition by recipient)
                 when 3 then 'admin' when 2 then 'manager' else 'csm' end as role,
            account_id
        from scope_grants
    )
"""


def account_scopes(con, people: People) -> list[tuple[str, str, str]]:
    """(recipient, role, account_id) for every person whose book, team or stand-in duty covers
    an account (plus '*' for the data team and admins). One role per person: the broadest.
    """
    acc = accounts_sql(con)
    if acc is None:
        return []
    return con.execute(
        "with " + _SCOPES_CTE.format(acc=acc) + " select * from scopes order by 1, 3",
        _params(people),
    ).fetchall()


def role_of(con, people: People, person: str) -> str | None:
    """'admin', 'manager' or 'csm' (the broadest this person holds), None: sees nothing."""
    person = _clean(person) or ""
    if person in people.admins:
        return "admin"
    if person in people.managers or person == people.default_escalation:
        return "manager"
    acc = accounts_sql(con)
    if acc is not None:
        mgr, csm = con.execute(
            f"select count(*) filter (where mgr = $p), count(*) filter (where csm = $p) "
            f"from ({acc})",
            {"p": person},
        ).fetchall()[0]
        if mgr:
            return "manager"
        if csm:
            return "csm"
    if person in (people.unassigned_owner, people.data_team):
        return "csm"
    if table_exists(con, "alerts", "alerts"):
        esc, own = con.execute(
            "select count(*) filter (where lower(escalation_email) = $p), "
            "count(*) filter (where lower(owner_email) = $p) from alerts.alerts",
            {"p": person},
        ).fetchall()[0]
        if esc:
            return "manager"
        if own:
            return "csm"
    return None


def alert_filter(
    con, people: People, person: str, alias: str = "a"
) -> tuple[str | None, str, dict]:
    """(role, SQL predicate over alerts.alerts as `alias`, named parameters) for the alerts
    `person` may see and act on. The predicate is `false` for someone with no role.
    """
    person = _clean(person) or ""
    role = role_of(con, people, person)
    if role == "admin":
        return role, "true", {}
    if role is None:
        return None, "false", {}
    params = {"scope_person": person, **{f"scope_{k}": v for k, v in _params(people).items()}}
    a = alias
    parts = [
        f"lower({a}.owner_email) = $scope_person",
        f"lower({a}.escalation_email) = $scope_person",
        f"({a}.account_id = '{WHOLE_WAREHOUSE}' and $scope_person = $scope_data_team)",
    ]
    acc = accounts_sql(con)
    if acc is not None:
        parts.append(
            f"{a}.account_id in (select account_id from ({acc}) "
            "where csm = $scope_person or mgr = $scope_person "
            "or (csm is null and $scope_person = $scope_unassigned) "
            "or (mgr is null and $scope_person = $scope_default_escalation))"
        )
    if table_exists(con, "alerts", "escalations"):
        parts.append(
            f"{a}.alert_id in (select alert_id from alerts.escalations "
            "where lower(escalated_to) = $scope_person)"
        )
    params.pop("scope_admins")
    return role, "(" + " or ".join(parts) + ")", params


def may_see(con, people: People, person: str, alert_id: str) -> bool:
    """True when `person` may see (and act on) this alert."""
    _, where, params = alert_filter(con, people, person)
    return bool(
        con.execute(
            f"select count(*) from alerts.alerts a where a.alert_id = $scope_alert and {where}",
            {**params, "scope_alert": alert_id},
        ).fetchall()[0][0]
    )


def alert_audience(con, people: People) -> list[tuple[str, str, str]]:
    """(recipient, role, alert_id) for every person and every alert they may see: the account
    scopes above plus the alerts routed or escalated to someone outside them.
    """
    if not table_exists(con, "alerts", "alerts"):
        return []
    acc = accounts_sql(con) or "select null::varchar as account_id, null as csm, null as mgr"
    routed = [
        "select lower(owner_email) as recipient, alert_id from alerts.alerts "
        "where owner_email is not null",
        "select lower(escalation_email), alert_id from alerts.alerts "
        "where escalation_email is not null",
    ]
    if table_exists(con, "alerts", "escalations"):
        routed.append(
            "select lower(escalated_to), alert_id from alerts.escalations "
            "where escalated_to is not null"
        )
    rows = con.execute(
        "with "
        + _SCOPES_CTE.format(acc=acc)
        + f""",
        routed as ({" union all ".join(routed)}),
        grants as (
            select s.recipient, a.alert_id from alerts.alerts a
            join scopes s on s.account_id = a.account_id
            union
            select recipient, alert_id from routed
        ),
        roles as (select recipient, any_value(role) as role from scopes group by 1)
        select g.recipient, r.role, g.alert_id
        from grants g left join roles r using (recipient)
        order by 1, 3
        """,
        _params(people),
    ).fetchall()
    # Someone known only as an alert's owner or escalation: their role from role_of.
    missing = {r for r, role, _ in rows if role is None}
    roles = {r: role_of(con, people, r) or "csm" for r in missing}
    return [(r, role or roles[r], a) for r, role, a in rows]
