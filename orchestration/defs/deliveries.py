"""Dagster definitions for the deliveries stage: outbox-backed digests, critical mail, CRM tasks."""

import datetime as dt
import os
import time
from typing import Any

import dagster as dg
import yaml
from dagster_duckdb import DuckDBResource

from notifications.chat import ChatConfig, WebhookSender
from notifications.content import ContentConfig
from notifications.critical import (
    check_failure_deliveries,
    critical_coverage,
    retry_critical,
    run_critical,
    send_now,
)
from notifications.crm import CrmConfig, connector
from notifications.digest import build_digests
from notifications.mail import SmtpConfig, SmtpSender
from notifications.outbox import (
    dead_letters,
    deliver_due,
    enqueue,
    outbox_counts,
    send_emails_now,
    utcnow,
)
from notifications.reasons import glossary_at
from notifications.schema import ensure_schema
from notifications.tasks import TaskPolicy, build_crm_tasks, sync_task_status
from orchestration.asof import AsOfConfig, resolve_as_of
from orchestration.publishing import ANALYST_DB, publish_analyst_database_op
from orchestration.resources import InboxResource, PathsResource, inbox_resource
from orchestration.sensing import publish_state, request_when_due

OUTBOX = dg.AssetKey(["ops", "outbox"])
CRITICAL = dg.AssetKey(["ops", "critical_alerts"])
CRITICAL_JOB = "critical_alerts_job"
OUTBOX_JOB = "outbox_delivery_job"
CRM_SYNC_JOB = "crm_status_sync_job"
UPSTREAM = [dg.AssetKey(["alerts", "alerts"]), dg.AssetKey(["marts", "dim_accounts"])]
# As alerts.CRITICAL_PATH (kept apart so this module loads without the other stages): the
# critical email step runs before any other ready step of its run.
CRITICAL_PATH = {"dagster/priority": "10"}
NETWORK_RETRY = dg.RetryPolicy(
    max_retries=3, delay=20, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


class SmtpResource(dg.ConfigurableResource):
    """SMTP relay settings (SMTP_HOST, SMTP_PORT, SMTP_SECURITY, SMTP_USER, SMTP_PASSWORD,
    SMTP_ALLOW_PLAIN_LOGIN, EA_MAIL_FROM). Defaults point at the demo's local capture server;
    with SMTP_USER set the default security is STARTTLS.
    """

    host: str = "127.0.0.1"
    port: int = 8025
    security: str = ""  # "" = starttls when `user` is set, else plain
    user: str = ""
    password: str = ""
    mail_from: str = "Engagement Alerts <alerts@engagement-alerts.local>"
    timeout_seconds: float = 10.0
    ca_file: str = ""
    allow_plain_login: str = "false"  # SMTP_ALLOW_PLAIN_LOGIN

    def settings(self) -> SmtpConfig:
        return SmtpConfig(
            host=self.host,
            port=int(self.port),
            security=self.security,
            allow_plain_login=str(self.allow_plain_login).lower() in ("1", "true", "yes"),
            user=self.user,
            password=self.password,
            mail_from=self.mail_from,
            timeout_seconds=self.timeout_seconds,
            ca_file=self.ca_file,
        )

    def sender(self) -> SmtpSender:
        return SmtpSender(self.settings())


class ChatResource(dg.ConfigurableResource):
    """Second-channel webhooks (SLACK_WEBHOOK_URL, TEAMS_WEBHOOK_URL and the data team's
    SLACK_DATA_TEAM_WEBHOOK_URL, TEAMS_DATA_TEAM_WEBHOOK_URL; unset = the critical one).
    config/routing.yml `second_channel` says which channel carries what.
    """

    slack_webhook_url: str = ""
    teams_webhook_url: str = ""
    slack_data_team_webhook_url: str = ""
    teams_data_team_webhook_url: str = ""
    timeout_seconds: float = 10.0

    def settings(self) -> ChatConfig:
        return ChatConfig(
            urls={
                "slack": {
                    "critical": self.slack_webhook_url,
                    "data_team": self.slack_data_team_webhook_url,
                },
                "teams": {
                    "critical": self.teams_webhook_url,
                    "data_team": self.teams_data_team_webhook_url,
                },
            },
            timeout_seconds=self.timeout_seconds,
        )

    def sender(self) -> WebhookSender:
        return WebhookSender(self.settings())


class CrmResource(dg.ConfigurableResource):
    """CRM connector settings (CRM_MODE=record|hubspot|salesforce|webhook and the base URLs and
    tokens). The default, record, keeps tasks in the outbox without sending them.
    """

    mode: str = "record"
    hubspot_base_url: str = ""
    hubspot_token: str = ""
    salesforce_base_url: str = ""
    salesforce_token: str = ""
    webhook_url: str = ""
    webhook_secret: str = ""
    timeout_seconds: float = 10.0

    def settings(self, maps: dict[str, dict[str, str]] | None = None) -> CrmConfig:
        base, token = {
            "hubspot": (self.hubspot_base_url, self.hubspot_token),
            "salesforce": (self.salesforce_base_url, self.salesforce_token),
            "webhook": (self.webhook_url, ""),
        }.get(self.mode, ("", ""))
        return CrmConfig(
            mode=self.mode,
            base_url=base,
            token=token,
            webhook_secret=self.webhook_secret,
            timeout_seconds=self.timeout_seconds,
            owner_ids=(maps or {}).get("owner_ids", {}),
            account_ids=(maps or {}).get("account_ids", {}),
        )

    def connector(self, maps: dict[str, dict[str, str]] | None = None):
        """The outbox sender; `maps` = CRM user ids by owner email, CRM record ids by account."""
        return connector(self.settings(maps))


def _env(name: str, default: Any) -> Any:
    """The variable as a dg.EnvVar when it is set (resolved by Dagster at run time, shown in the
    UI by name only), else the demo default. Only presence is checked here, never the value.
    """
    if name not in os.environ:
        return default
    return dg.EnvVar.int(name) if isinstance(default, int) else dg.EnvVar(name)


def deliveries_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "smtp": SmtpResource(
            host=_env("SMTP_HOST", "127.0.0.1"),
            port=_env("SMTP_PORT", 8025),
            security=_env("SMTP_SECURITY", ""),
            allow_plain_login=_env("SMTP_ALLOW_PLAIN_LOGIN", "false"),
            user=_env("SMTP_USER", ""),
            password=_env("SMTP_PASSWORD", ""),
            mail_from=_env("EA_MAIL_FROM", "Engagement Alerts <alerts@engagement-alerts.local>"),
            ca_file=_env("SMTP_CA_FILE", ""),
        ),
        "chat": ChatResource(
            slack_webhook_url=_env("SLACK_WEBHOOK_URL", ""),
            teams_webhook_url=_env("TEAMS_WEBHOOK_URL", ""),
            slack_data_team_webhook_url=_env("SLACK_DATA_TEAM_WEBHOOK_URL", ""),
            teams_data_team_webhook_url=_env("TEAMS_DATA_TEAM_WEBHOOK_URL", ""),
        ),
        "crm": CrmResource(
            mode=_env("CRM_MODE", "record"),
            hubspot_base_url=_env("HUBSPOT_BASE_URL", ""),
            hubspot_token=_env("HUBSPOT_TOKEN", ""),
            salesforce_base_url=_env("SALESFORCE_BASE_URL", ""),
            salesforce_token=_env("SALESFORCE_TOKEN", ""),
            webhook_url=_env("WEBHOOK_URL", ""),
            webhook_secret=_env("WEBHOOK_SECRET", ""),
        ),
        # The alert inbox the emails link to (EA_PUBLIC_URL); the inbox stage uses it too.
        "inbox": inbox_resource(),
    }


def _crm_maps(paths: PathsResource) -> dict[str, dict[str, str]]:
    """Optional config/crm.yml: `owner_ids: {csm email: CRM user id}` and
    `account_ids: {account_id: CRM company/account id}` (default: the account_id itself).
    """
    path = paths.config / "crm.yml"
    data = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    return {
        key: {str(k): str(v) for k, v in (data.get(key) or {}).items()}
        for key in ("owner_ids", "account_ids")
    }


def _content(paths: PathsResource, inbox: InboxResource | None = None) -> ContentConfig:
    """Routing, the glossary (config/glossary.yml: the words every message uses) and, with the
    inbox, its signed one-click action links (EA_PUBLIC_URL).
    """
    glossary = paths.config / "glossary.yml"
    return ContentConfig(
        routing=paths.routing(),
        glossary=glossary_at(glossary) if glossary.exists() else None,
        links=inbox.links(paths.data) if inbox is not None else None,
    )


def _senders(
    smtp: SmtpResource, crm: CrmResource, paths: PathsResource, chat: ChatResource
) -> dict[str, Any]:
    return {**_critical_senders(smtp, chat), "crm_task": crm.connector(_crm_maps(paths))}


def _critical_senders(smtp: SmtpResource, chat: ChatResource) -> dict[str, Any]:
    chat_sender = chat.sender()
    return {"email": smtp.sender(), "slack": chat_sender, "teams": chat_sender}


def _second_channel(paths: PathsResource) -> dict[str, list[str]]:
    """routing.yml `second_channel` (validated with the rules file by the alerts stage)."""
    value = paths.routing().get("second_channel") or {}
    return {k: list(v or []) for k, v in value.items()}


def _status_metadata(con) -> dict[str, Any]:
    counts = outbox_counts(con)
    return {f"outbox_{k}": v for k, v in counts.items()}


def _finish(duckdb: DuckDBResource, paths: PathsResource, source: str) -> dict[str, Any]:
    """After a delivery step: outbox counts for its metadata, and the sensors' work list."""
    with duckdb.get_connection() as con:
        meta = _status_metadata(con)
        publish_state(con, paths, source)
    return meta


@dg.asset(
    key=CRITICAL,
    deps=UPSTREAM,
    group_name="deliveries",
    kinds={"duckdb", "python"},
    retry_policy=NETWORK_RETRY,
    op_tags=CRITICAL_PATH,
    description="Critical alerts, escalation steps and reminders by email and on the second "
    "channel (Slack, Teams) as soon as the alerts are evaluated, in the same run: one message "
    "per alert and channel (outbox key), retried for 24 hours; a failure goes at once to the "
    "second channel and the data team.",
)
def critical_alerts(
    context: dg.AssetExecutionContext,
    duckdb: DuckDBResource,
    paths: PathsResource,
    smtp: SmtpResource,
    chat: ChatResource,
    inbox: InboxResource,
) -> dg.MaterializeResult:
    started = time.perf_counter()
    now = utcnow()
    with duckdb.get_connection() as con:
        ensure_schema(con)
    # Sent with the warehouse closed (claim, send, record): nothing waits on the relay.
    run = run_critical(
        duckdb.get_connection,
        paths.email_templates,
        _content(paths, inbox),
        _second_channel(paths),
        _critical_senders(smtp, chat),
        now,
    )
    meta = _finish(duckdb, paths, "ops/critical_alerts")
    context.log.info(f"critical alerts: {run.as_metadata()}")
    return dg.MaterializeResult(
        metadata={
            **run.as_metadata(),
            **meta,
            "second_channel": dg.MetadataValue.json(_second_channel(paths)),
            "seconds": round(time.perf_counter() - started, 3),
        }
    )


@dg.asset(
    key=["ops", "crm_tasks"],
    # After the critical emails: nothing else in the run may delay them.
    deps=[*UPSTREAM, CRITICAL],
    group_name="deliveries",
    kinds={"duckdb", "python"},
    retry_policy=NETWORK_RETRY,
    description="CRM tasks for open alerts whose routing asks for one, via the outbox.",
)
def crm_tasks(
    context: dg.AssetExecutionContext,
    duckdb: DuckDBResource,
    paths: PathsResource,
    crm: CrmResource,
    inbox: InboxResource,
) -> dg.MaterializeResult:
    now = utcnow()
    with duckdb.get_connection() as con:
        ensure_schema(con)
        tasks = build_crm_tasks(
            con,
            TaskPolicy.from_routing(paths.routing()),
            now,
            _content(paths).glossary,
            inbox_url=inbox.public_url,
        )
        new = enqueue(con, tasks, now)
    report = deliver_due(
        duckdb.get_connection,
        {"crm_task": crm.connector(_crm_maps(paths))},
        now,
        channels=["crm_task"],
    )
    meta = _finish(duckdb, paths, "ops/crm_tasks")
    examples = [t.subject for t in tasks[:3]]
    context.log.info(f"CRM tasks: {new} new, mode {crm.mode}, {report.as_metadata()}")
    return dg.MaterializeResult(
        metadata={
            "mode": crm.mode,
            "new_tasks": new,
            **report.as_metadata(),
            **meta,
            "examples": examples,
        }
    )


@dg.asset(
    key=["ops", "digests"],
    deps=[*UPSTREAM, dg.AssetKey(["ops", "crm_tasks"])],
    group_name="deliveries",
    kinds={"duckdb", "python"},
    retry_policy=NETWORK_RETRY,
    description="One daily digest email per CSM / manager / admin, scoped to their accounts.",
)
def digests(
    context: dg.AssetExecutionContext,
    config: AsOfConfig,
    duckdb: DuckDBResource,
    paths: PathsResource,
    smtp: SmtpResource,
    inbox: InboxResource,
) -> dg.MaterializeResult:
    now = utcnow()
    with duckdb.get_connection() as con:
        ensure_schema(con)
        as_of = resolve_as_of(con, config)
        built = build_digests(
            con,
            as_of,
            paths.email_templates,
            _content(paths, inbox),
            now=dt.datetime.combine(as_of, dt.time(7)),
        )
    new, report = send_emails_now(duckdb.get_connection, built, smtp.sender(), now)
    meta = _finish(duckdb, paths, "ops/digests")
    context.log.info(f"Digests for {as_of}: {len(built)} built, {new} new, {report.as_metadata()}")
    return dg.MaterializeResult(
        metadata={
            "as_of_date": str(as_of),
            "recipients": len(built),
            "new_digests": new,
            **report.as_metadata(),
            **meta,
            "examples": [d.subject for d in built[:3]],
        }
    )


@dg.asset(
    key=["ops", "outbox"],
    deps=[dg.AssetKey(["ops", "digests"]), dg.AssetKey(["ops", "crm_tasks"])],
    group_name="deliveries",
    kinds={"duckdb"},
    description="Delivery status of every message: pending, sent, recorded, failed, dead.",
)
def outbox(duckdb: DuckDBResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        meta = _status_metadata(con)
        dead = dead_letters(con, 5)
    return dg.MaterializeResult(metadata={**meta, "dead_examples": [str(d) for d in dead]})


@dg.asset_check(asset=OUTBOX, description="No delivery is stuck in the dead-letter state.")
def no_dead_letters(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        counts = outbox_counts(con)
        dead = dead_letters(con, 5)
    return dg.AssetCheckResult(
        passed=counts["dead"] == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "dead": counts["dead"],
            "examples": [f"{d['channel']} {d['idempotency_key']}: {d['last_error']}" for d in dead],
        },
    )


@dg.asset_check(
    asset=OUTBOX,
    blocking=True,
    description="Zero missed critical alerts: every critical alert raised or continued on the "
    "latest evaluated day has a sent or in-flight message (email, Slack, Teams) to a real "
    "recipient, or a recorded exemption. Fails the run and tells the data team on the second "
    "channel.",
)
def critical_alerts_delivered(
    context: dg.AssetCheckExecutionContext,
    duckdb: DuckDBResource,
    paths: PathsResource,
    smtp: SmtpResource,
    chat: ChatResource,
) -> dg.AssetCheckResult:
    config = _content(paths)
    with duckdb.get_connection() as con:
        ensure_schema(con)
        as_of = con.execute("select max(as_of_date) from alerts.evaluation_runs").fetchall()[0][0]
        if as_of is None:
            return dg.AssetCheckResult(passed=True, metadata={"note": "no evaluated day yet"})
        cov = critical_coverage(con, as_of, config.people)
    if not cov.holds:
        told = check_failure_deliveries(cov, _second_channel(paths), config.people)
        _, report = send_now(duckdb.get_connection, told, _critical_senders(smtp, chat), utcnow())
        context.log.error(
            f"critical alerts not delivered: {cov.as_metadata()}; "
            f"data team told: {report.as_metadata()}"
        )
    return dg.AssetCheckResult(passed=cov.holds, metadata=cov.as_metadata())


class DeliverConfig(dg.Config):
    """`now` as an ISO timestamp (UTC) to deliver as of; empty = the current time."""

    now: str = ""


@dg.op(
    description="Send every delivery whose next attempt is due (all channels); dead at the "
    "limit. Runs when the outbox retry sensor finds due rows in the published work list."
)
def deliver_outbox(
    context: dg.OpExecutionContext,
    config: DeliverConfig,
    duckdb: DuckDBResource,
    paths: PathsResource,
    smtp: SmtpResource,
    crm: CrmResource,
    chat: ChatResource,
) -> None:
    now = dt.datetime.fromisoformat(config.now) if config.now else utcnow()
    run = retry_critical(
        duckdb.get_connection,
        _content(paths),
        _second_channel(paths),
        _senders(smtp, crm, paths, chat),
        now,
    )
    meta = _finish(duckdb, paths, OUTBOX_JOB)
    report = run.as_metadata()
    context.log.info(f"outbox: {report}")
    context.log_event(
        dg.AssetObservation(
            asset_key=OUTBOX,
            metadata={
                **{f"retry_{k}": v for k, v in report.items() if k != "examples"},
                **meta,
            },
        )
    )


@dg.job(name=OUTBOX_JOB, description="Sends the outbox's due deliveries (retries after backoff).")
def outbox_delivery_job():
    publish_analyst_database_op(deliver_outbox())


@dg.op(description="Read CRM task status back: a completed task resolves its alert.")
def sync_crm_status(
    context: dg.OpExecutionContext,
    duckdb: DuckDBResource,
    paths: PathsResource,
    crm: CrmResource,
) -> None:
    from alerts import transition  # the alerts library owns the lifecycle and its audit log

    report = sync_task_status(
        duckdb.get_connection, crm.connector(_crm_maps(paths)), transition, utcnow()
    )
    with duckdb.get_connection() as con:
        publish_state(con, paths, CRM_SYNC_JOB)
    context.log.info(f"CRM sync: {report.as_metadata()}")
    context.log_event(
        dg.AssetObservation(
            asset_key=OUTBOX, metadata={f"sync_{k}": v for k, v in report.as_metadata().items()}
        )
    )


@dg.job(name=CRM_SYNC_JOB, description="Reads CRM task status back and resolves alerts.")
def crm_status_sync_job():
    publish_analyst_database_op(sync_crm_status())


critical_alerts_job = dg.define_asset_job(
    CRITICAL_JOB,
    selection=dg.AssetSelection.assets(CRITICAL, ANALYST_DB),
    description="Critical alerts, escalations and reminders by email and on the second "
    "channel, outside a daily run.",
)


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Safety net for critical alerts and SLA escalations with no email queued (raised "
    "outside a daily run, or a run that stopped before its critical step): requests a "
    f"{CRITICAL_JOB} run. Reads the published work list only.",
)
def critical_alert_sensor(
    context: dg.SensorEvaluationContext, paths: PathsResource
) -> dg.RunRequest | dg.SkipReason:
    return request_when_due(context, paths, ["critical", "escalation"], CRITICAL_JOB)


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Requests an {OUTBOX_JOB} run when deliveries are due (a retry whose backoff "
    "has passed, or mail queued by a run that stopped). Reads the published work list only.",
)
def outbox_retry_sensor(
    context: dg.SensorEvaluationContext, paths: PathsResource
) -> dg.RunRequest | dg.SkipReason:
    return request_when_due(context, paths, ["delivery"], OUTBOX_JOB)


@dg.sensor(
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Every 5 minutes while CRM tasks are open: requests a {CRM_SYNC_JOB} run that "
    "reads their status back (a completed task resolves its alert).",
)
def crm_status_sync_sensor(
    context: dg.SensorEvaluationContext, paths: PathsResource, crm: CrmResource
) -> dg.RunRequest | dg.SkipReason:
    if crm.mode in ("record", "webhook"):
        return dg.SkipReason(f"CRM mode {crm.mode!r} has no task status to read back.")
    return request_when_due(
        context, paths, ["crm_task"], CRM_SYNC_JOB, every=dt.timedelta(minutes=5)
    )


deliveries_job = dg.define_asset_job(
    "deliveries_job",
    selection=dg.AssetSelection.groups("deliveries") | dg.AssetSelection.assets(ANALYST_DB),
)

defs = dg.Definitions(
    assets=[critical_alerts, crm_tasks, digests, outbox],
    asset_checks=[no_dead_letters, critical_alerts_delivered],
    sensors=[critical_alert_sensor, outbox_retry_sensor, crm_status_sync_sensor],
    jobs=[deliveries_job, critical_alerts_job, outbox_delivery_job, crm_status_sync_job],
    resources=deliveries_resources(),
)
