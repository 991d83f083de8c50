"""`ea doctor`: start-up checks, each failure with the fix in one line.

ea doctor            # every check; exit 1 if one fails
ea doctor --json     # the same as JSON
ea doctor --only smtp,crm

Checks: config (the profile's variables, rules.yml, routing.yml, the Dagster instance's storage),
warehouse and landing (writable folders), postgres (the Dagster and MLflow stores answer and
accept the login; production profile), smtp (the relay answers, TLS and login as configured;
nothing is sent), crm (the connector's token or secret is accepted by a read-only request, or a
signed ping for the webhook; off when CRM_MODE=record), slack and teams (the webhook exists:
an empty message, which the services refuse without posting anything; off when no URL is set),
models (each model has a champion in the MLflow registry). Secrets never appear in the output:
URLs are shown without passwords, webhook URLs by host only.
"""

from __future__ import annotations

import argparse
import json
import os
import smtplib
import socket
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from service.profile import Settings, instance_storage, redact

TIMEOUT = 8.0


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | fail | off
    detail: str
    fix: str = ""


def _ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def _fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, "fail", detail, fix)


def _off(name: str, detail: str) -> Check:
    return Check(name, "off", detail)


# --- config ---------------------------------------------------------------------------------


def check_config(settings: Settings, env: Mapping[str, str]) -> list[Check]:
    from alerts.rules import RulesFileError, load_routing, load_rules

    problems = settings.problems()
    if problems:
        return [_fail("config", p, f) for p, f in problems]
    if not settings.config_dir.is_dir():
        return [
            _fail(
                "config",
                f"no config folder at {settings.config_dir}",
                "set EA_CONFIG_DIR to the folder holding rules.yml and routing.yml",
            )
        ]
    try:
        rules = load_rules(settings.config_dir / "rules.yml")
        routing = load_routing(settings.config_dir / "routing.yml")
    except RulesFileError as exc:
        return [
            _fail(
                "config",
                " ".join(line.strip() for line in str(exc).splitlines()[:2])[:300],
                f"correct it (`ea alerts validate` lists every problem in {settings.config_dir})",
            )
        ]
    out = []
    storage = instance_storage(settings.dagster_home)
    wanted = "postgres" if settings.production else "sqlite"
    if storage not in (wanted, "missing"):
        fix = (
            "run `ea serve` once (it installs deploy/dagster.production.yaml) or copy that file "
            "to $DAGSTER_HOME/dagster.yaml"
            if settings.production
            else "set EA_PROFILE=production, or point DAGSTER_HOME at the embedded instance"
        )
        out.append(
            _fail(
                "config",
                f"{settings.dagster_home}/dagster.yaml keeps the Dagster instance on {storage}, "
                f"but the profile is {settings.profile}",
                fix,
            )
        )
    for channel, variable in (("slack", "SLACK_WEBHOOK_URL"), ("teams", "TEAMS_WEBHOOK_URL")):
        wants = [a for a, chans in routing.second_channel.items() if channel in chans]
        if wants and not env.get(variable):
            out.append(
                _fail(
                    "config",
                    f"routing.yml sends {' and '.join(wants)} messages to {channel}, "
                    f"but {variable} is empty",
                    f"set {variable} in the environment file, or remove {channel} from "
                    "second_channel in routing.yml",
                )
            )
    if not out:
        instance = {"missing": "installed by `ea serve`"}.get(storage, f"on {storage}")
        out.append(
            _ok(
                "config",
                f"{settings.profile} profile; {len(rules.rules)} rules ({len(rules.enabled)} "
                f"enabled), routing valid; Dagster instance {instance}",
            )
        )
    return out


# --- folders --------------------------------------------------------------------------------


def _writable(folder: Path) -> str | None:
    """None when a file can be created and removed in `folder`, else why not."""
    probe = folder / f".ea-doctor-{uuid.uuid4().hex[:8]}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def check_warehouse(settings: Settings) -> list[Check]:
    path = settings.warehouse
    folder = path.parent
    if not folder.is_dir():
        why = "is a file" if folder.exists() else "does not exist"
        return [
            _fail(
                "warehouse",
                f"the warehouse folder {folder} {why}",
                f"create it (mkdir -p {folder}) or set DUCKDB_DATABASE to a file in a folder",
            )
        ]
    why = _writable(folder)
    if why is not None:
        return [
            _fail(
                "warehouse",
                f"cannot write in {folder} ({why})",
                f"give the service user write access to {folder} (the warehouse and its .wal)",
            )
        ]
    if path.exists() and not os.access(path, os.W_OK):
        return [
            _fail(
                "warehouse",
                f"{path} is read-only",
                f"give the service user write access to {path}",
            )
        ]
    state = "exists" if path.exists() else "will be created by the first run"
    return [_ok("warehouse", f"{path} ({state}); folder writable")]


def check_landing(settings: Settings) -> list[Check]:
    folder = settings.landing_dir
    if not folder.is_dir():
        why = "is a file" if folder.exists() else "does not exist"
        return [
            _fail(
                "landing",
                f"the landing folder {folder} {why}",
                f"create it (mkdir -p {folder}) or set EA_LANDING_DIR to where exports land",
            )
        ]
    why = _writable(folder)
    if why is not None:
        return [
            _fail(
                "landing",
                f"cannot write in {folder} ({why})",
                f"give the export job and the service user write access to {folder}",
            )
        ]
    days = sum(1 for p in folder.iterdir() if (p / "_manifest.json").exists())
    return [_ok("landing", f"{folder} writable; {days} complete landing folder(s)")]


# --- Postgres -------------------------------------------------------------------------------


def _postgres(name: str, variable: str, url: str) -> Check:
    import psycopg2

    parts = urllib.parse.urlsplit(url)
    where = f"{parts.hostname}:{parts.port or 5432}"
    database = parts.path.lstrip("/")
    dsn = url.replace("postgresql+psycopg2://", "postgresql://", 1)
    try:
        con = psycopg2.connect(dsn, connect_timeout=int(TIMEOUT))
    except psycopg2.OperationalError as exc:
        text = str(exc).strip()
        lowered = text.lower()
        if "password authentication failed" in lowered or "no password supplied" in lowered:
            return _fail(
                "postgres",
                f"{name}: {where} refused the login of {parts.username!r}",
                f"correct the user or password in {variable} (or the server's pg_hba.conf)",
            )
        if "does not exist" in lowered and "database" in lowered:
            return _fail(
                "postgres",
                f"{name}: no database {database!r} on {where}",
                f"create it: createdb -h {parts.hostname} -p {parts.port or 5432} "
                f"-U {parts.username} {database}",
            )
        if "refused" in lowered or "timeout" in lowered or "could not translate" in lowered:
            return _fail(
                "postgres",
                f"{name}: nothing answers at {where}",
                f"start Postgres, or correct the host and port in {variable}",
            )
        return _fail(
            "postgres",
            f"{name}: {text.splitlines()[0][:200]}",
            f"check {variable} ({redact(url)})",
        )
    try:
        with con.cursor() as cur:
            cur.execute("show server_version")
            version = cur.fetchone()[0]
    finally:
        con.close()
    return _ok("postgres", f"{name}: {redact(url)} answers (Postgres {version})")


def check_postgres(settings: Settings) -> list[Check]:
    if not settings.production:
        return [_off("postgres", "embedded profile: the Dagster instance and MLflow use files")]
    return [
        _postgres("Dagster store", "EA_DAGSTER_POSTGRES_URL", settings.dagster_postgres_url),
        _postgres("MLflow store", "EA_MLFLOW_BACKEND_URI", settings.mlflow_backend_uri),
    ]


# --- SMTP -----------------------------------------------------------------------------------


def check_smtp(env: Mapping[str, str]) -> list[Check]:
    from notifications.mail import SmtpConfig

    try:
        c = SmtpConfig(
            host=env.get("SMTP_HOST") or "127.0.0.1",
            port=int(env.get("SMTP_PORT") or 8025),
            security=env.get("SMTP_SECURITY") or "",
            user=env.get("SMTP_USER") or "",
            password=env.get("SMTP_PASSWORD") or "",
            ca_file=env.get("SMTP_CA_FILE") or "",
            allow_plain_login=(env.get("SMTP_ALLOW_PLAIN_LOGIN") or "").lower()
            in ("1", "true", "yes"),
            timeout_seconds=TIMEOUT,
        )
    except ValueError as exc:
        return [_fail("smtp", str(exc)[:300], "correct SMTP_* in the environment file")]
    where = f"{c.host}:{c.port}"
    try:
        tls = None
        if c.security != "plain":
            tls = ssl.create_default_context(cafile=c.ca_file or None)
        if c.security == "ssl":
            client = smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout_seconds, context=tls)
        else:
            client = smtplib.SMTP(c.host, c.port, timeout=c.timeout_seconds)
        with client:
            client.ehlo()
            if c.security == "starttls":
                client.starttls(context=tls)
                client.ehlo()
            if c.user:
                client.login(c.user, c.password)
            client.noop()
    except smtplib.SMTPAuthenticationError as exc:
        return [
            _fail(
                "smtp",
                f"{where} refused the login of {c.user!r} ({exc.smtp_code})",
                "correct SMTP_USER / SMTP_PASSWORD",
            )
        ]
    except smtplib.SMTPNotSupportedError as exc:
        return [
            _fail(
                "smtp",
                f"{where}: {exc}",
                "set SMTP_SECURITY to what the relay offers (plain, starttls or ssl)",
            )
        ]
    except (ssl.SSLError, ssl.CertificateError) as exc:
        return [
            _fail(
                "smtp",
                f"{where}: TLS failed ({exc})",
                "check SMTP_SECURITY (starttls or ssl) and SMTP_CA_FILE for a private certificate",
            )
        ]
    except (OSError, smtplib.SMTPException) as exc:
        return [
            _fail(
                "smtp",
                f"nothing answers SMTP at {where} ({type(exc).__name__}: {exc})",
                "start the mail relay, or correct SMTP_HOST / SMTP_PORT",
            )
        ]
    login = f", logged in as {c.user}" if c.user else ""
    return [_ok("smtp", f"{where} answers ({c.security}{login}); nothing sent")]


# --- CRM --------------------------------------------------------------------------------------


def _http(method: str, url: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            return response.status, response.read(2000).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(2000).decode(errors="replace")


def _host(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def check_crm(env: Mapping[str, str]) -> list[Check]:
    from notifications.crm import CRM_MODES, sign

    mode = (env.get("CRM_MODE") or "record").strip().lower()
    if mode == "record":
        return [_off("crm", "CRM_MODE=record: tasks are kept in the outbox, not sent")]
    if mode not in CRM_MODES:
        fix = f"set CRM_MODE to one of {', '.join(CRM_MODES)}"
        return [_fail("crm", f"CRM_MODE={mode!r} is unknown", fix)]
    base_var, secret_var = {
        "hubspot": ("HUBSPOT_BASE_URL", "HUBSPOT_TOKEN"),
        "salesforce": ("SALESFORCE_BASE_URL", "SALESFORCE_TOKEN"),
        "webhook": ("WEBHOOK_URL", "WEBHOOK_SECRET"),
    }[mode]
    base, secret = env.get(base_var) or "", env.get(secret_var) or ""
    if not base or not secret:
        missing = " and ".join(v for v, x in ((base_var, base), (secret_var, secret)) if not x)
        return [_fail("crm", f"CRM_MODE={mode} but {missing} is empty", f"set {missing}")]
    probe = f"ea-doctor-{uuid.uuid4().hex[:8]}"
    bearer = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    try:
        if mode == "hubspot":
            body = {
                "filterGroups": [
                    {"filters": [{"propertyName": "ea_alert_id", "operator": "EQ", "value": probe}]}
                ],
                "limit": 1,
            }
            status, text = _http(
                "POST",
                base.rstrip("/") + "/crm/v3/objects/tasks/search",
                json.dumps(body).encode(),
                bearer,
            )
            accepted = status == 200
        elif mode == "salesforce":
            version = env.get("SALESFORCE_API_VERSION") or "v60.0"
            status, text = _http(
                "GET",
                base.rstrip("/") + f"/services/data/{version}/sobjects/Task/Alert_Id__c/{probe}",
                None,
                bearer,
            )
            # No such task is the answer to a good token (the route exists, the record does not).
            accepted = status == 200 or (status == 404 and "NOT_FOUND" in text.upper())
        else:
            raw = json.dumps({"event": "ping", "source": "ea doctor"}, sort_keys=True).encode()
            headers = {
                "Content-Type": "application/json",
                "X-EA-Signature": sign(secret, raw),
                "Idempotency-Key": probe,
            }
            status, text = _http("POST", base, raw, headers)
            accepted = 200 <= status < 300
    except (OSError, ValueError) as exc:
        return [
            _fail(
                "crm",
                f"{mode}: nothing answers at {_host(base)} ({exc})",
                f"correct {base_var}, or check the network path to the CRM",
            )
        ]
    if accepted:
        what = "a signed ping was accepted" if mode == "webhook" else "the token was accepted"
        return [_ok("crm", f"{mode} at {_host(base)}: {what}")]
    if status in (401, 403):
        return [
            _fail(
                "crm",
                f"{mode} at {_host(base)} rejected the "
                f"{'signature' if mode == 'webhook' else 'token'} ({status})",
                f"replace {secret_var} with a valid one",
            )
        ]
    return [
        _fail(
            "crm",
            f"{mode} at {_host(base)} answered {status}: {text.strip()[:160]}",
            f"check {base_var} (the API's base URL) and the setup in docs/deliveries.md",
        )
    ]


# --- Slack and Teams --------------------------------------------------------------------------


def _webhook(channel: str, variable: str, url: str) -> Check:
    try:
        status, text = _http("POST", url, b"{}", {"Content-Type": "application/json"})
    except (OSError, ValueError) as exc:
        return _fail(
            channel,
            f"{variable}: nothing answers at {_host(url)} ({type(exc).__name__})",
            f"correct {variable}, or check the network path to {_host(url)}",
        )
    # An empty message is refused (Slack: 400 no_text / invalid_payload; Teams: 400 bad
    # payload) only by a webhook that exists; a revoked or unknown one is 404 (no_service),
    # an archived channel 410, a forbidden one 403.
    if status == 400 or 200 <= status < 300:
        return _ok(channel, f"{variable}: the webhook at {_host(url)} exists (nothing posted)")
    return _fail(
        channel,
        f"{variable}: the webhook at {_host(url)} was rejected ({status} {text.strip()[:80]})",
        f"create a new incoming webhook for the channel and put its URL in {variable}",
    )


def check_chat(env: Mapping[str, str], channel: str) -> list[Check]:
    prefix = channel.upper()
    variables = (f"{prefix}_WEBHOOK_URL", f"{prefix}_DATA_TEAM_WEBHOOK_URL")
    set_ = [(v, env[v]) for v in variables if env.get(v)]
    if not set_:
        return [_off(channel, f"no {prefix}_WEBHOOK_URL: {channel.title()} is not used")]
    return [_webhook(channel, v, url) for v, url in set_]


# --- models ---------------------------------------------------------------------------------


def check_models(settings: Settings) -> list[Check]:
    uri = settings.mlflow_tracking_uri
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=TIMEOUT):  # noqa: S310
                pass
        except (OSError, ValueError) as exc:
            return [
                _fail(
                    "models",
                    f"the MLflow server at {uri} does not answer ({type(exc).__name__})",
                    "start it (`ea serve` runs it), or correct MLFLOW_TRACKING_URI",
                )
            ]
    from ml.config import REGISTERED_NAMES

    store = Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None
    if store is not None and not store.exists():
        # Not created by a check: no store means nothing was ever trained.
        return [
            _fail(
                "models",
                f"{name} has no champion (no MLflow store at {store} yet)",
                "train the models: `ea job full_pipeline_job` on a new warehouse",
            )
            for name in REGISTERED_NAMES.values()
        ]
    from ml.registry import champion_version

    out = []
    for model, name in REGISTERED_NAMES.items():
        try:
            version = champion_version(uri, name)
        except Exception as exc:  # noqa: BLE001 - any registry error is this check's failure
            return [
                _fail(
                    "models",
                    f"cannot read the MLflow registry at {redact(uri)} "
                    f"({type(exc).__name__}: {str(exc)[:160]})",
                    "correct MLFLOW_TRACKING_URI (embedded: sqlite:///.../mlflow.db)",
                )
            ]
        if version is None:
            out.append(
                _fail(
                    "models",
                    f"{name} has no champion",
                    "train the models: `ea job full_pipeline_job` on a new warehouse, else "
                    "`ea job training_job` (the champion moves only if it beats the baseline)",
                )
            )
        else:
            out.append(_ok("models", f"{name}: champion is version {version} ({model})"))
    return out


# --- running them -----------------------------------------------------------------------------

CHECKS: dict[str, Callable[[Settings, Mapping[str, str]], list[Check]]] = {
    "config": check_config,
    "warehouse": lambda s, e: check_warehouse(s),
    "landing": lambda s, e: check_landing(s),
    "postgres": lambda s, e: check_postgres(s),
    "smtp": lambda s, e: check_smtp(e),
    "crm": lambda s, e: check_crm(e),
    "slack": lambda s, e: check_chat(e, "slack"),
    "teams": lambda s, e: check_chat(e, "teams"),
    "models": lambda s, e: check_models(s),
}


def run_checks(env: Mapping[str, str] | None = None, only: tuple[str, ...] = ()) -> list[Check]:
    env = dict(os.environ if env is None else env)
    settings = Settings.from_env(env)
    results: list[Check] = []
    for name, check in CHECKS.items():
        if only and name not in only:
            continue
        try:
            results.extend(check(settings, env))
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            results.append(
                _fail(name, f"the check itself failed: {type(exc).__name__}: {str(exc)[:200]}",
                      "report this with the output of `ea doctor --json`")  # fmt: skip
            )
    return results


def render(results: list[Check], profile: str) -> str:
    lines = [f"ea doctor ({profile} profile)"]
    width = max(len(c.name) for c in results) if results else 8
    for c in results:
        mark = {"ok": "ok  ", "fail": "FAIL", "off": "off "}[c.status]
        lines.append(f"  {mark}  {c.name.ljust(width)}  {c.detail}")
        if c.fix:
            lines.append(f"        {' ' * width}  fix: {c.fix}")
    failed = sum(c.status == "fail" for c in results)
    lines.append(f"{failed} problem(s)" if failed else "all checks passed")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="ea doctor", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(CHECKS)}")
    args = p.parse_args(argv)
    only = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = sorted(set(only) - set(CHECKS))
    if unknown:
        p.error(f"unknown check(s) {unknown}; choose from {', '.join(CHECKS)}")
    socket.setdefaulttimeout(TIMEOUT)
    results = run_checks(only=only)
    if args.json:
        print(json.dumps([asdict(c) for c in results], indent=1))
    else:
        print(render(results, Settings.from_env(os.environ).profile))
    return 1 if any(c.status == "fail" for c in results) else 0


if __name__ == "__main__":
    sys.exit(main())
