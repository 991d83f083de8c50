"""`ea inbox`: run the alert inbox, or publish its snapshot / apply its actions by hand.

ea inbox                      # serve on the host and port of EA_PUBLIC_URL
ea inbox serve --port 3001
ea inbox publish              # snapshot from $DUCKDB_DATABASE (when no run holds it)
ea inbox apply                # write recorded actions into the warehouse (same)
ea inbox status               # actions waiting for the warehouse, snapshot age
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import urllib.parse
from pathlib import Path

DEFAULT_PUBLIC_URL = "http://127.0.0.1:3001"


def data_dir() -> Path:
    return Path(os.environ.get("EA_DATA_DIR") or "data")


def public_url() -> str:
    return (os.environ.get("EA_PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/")


def store_path() -> Path:
    return Path(os.environ.get("EA_INBOX_DB") or data_dir() / "inbox.sqlite")


def snapshot_path() -> Path:
    return Path(os.environ.get("EA_APP_SNAPSHOT") or data_dir() / "app_snapshot.duckdb")


def settings_from_env():
    """InboxSettings from the environment (the variables README's configuration table lists)."""
    from inbox.app import InboxSettings
    from notifications.links import load_or_create_secret
    from notifications.mail import SmtpConfig
    from service.profile import Settings
    from service.status import Sources, collect

    sources = Sources(Settings.from_env(os.environ))

    return InboxSettings(
        public_url=public_url(),
        secret=load_or_create_secret(os.environ.get("EA_SECRET_KEY", ""), data_dir()),
        store_path=store_path(),
        snapshot_path=snapshot_path(),
        config_dir=Path(os.environ.get("EA_CONFIG_DIR") or "config"),
        smtp=SmtpConfig(
            host=os.environ.get("SMTP_HOST") or "127.0.0.1",
            port=int(os.environ.get("SMTP_PORT") or 8025),
            # "" = STARTTLS when a user is set (as for the digests), else plain
            security=os.environ.get("SMTP_SECURITY") or "",
            user=os.environ.get("SMTP_USER") or "",
            password=os.environ.get("SMTP_PASSWORD") or "",
            mail_from=os.environ.get("EA_MAIL_FROM")
            or "Engagement Alerts <alerts@engagement-alerts.local>",
            ca_file=os.environ.get("SMTP_CA_FILE") or "",
            allow_plain_login=(os.environ.get("SMTP_ALLOW_PLAIN_LOGIN") or "false").lower()
            in ("1", "true", "yes"),
        ),
        # The data team's status page reads the Dagster instance, MLflow and the published
        # files, never the warehouse.
        status=lambda: collect(sources.settings, sources),
    )


def _warehouse(args):
    import duckdb

    path = args.database or os.environ.get("DUCKDB_DATABASE")
    if not path or not Path(path).exists():
        raise SystemExit(f"error: no warehouse at {path!r}: set DUCKDB_DATABASE or --database")
    try:
        return duckdb.connect(path)
    except duckdb.IOException as exc:
        raise SystemExit(
            f"error: the warehouse is busy ({exc}); a pipeline run holds it. The pipeline "
            "applies actions and publishes the snapshot itself (alerts/inbox_actions, "
            "inbox/snapshot); try again when the run has finished."
        ) from None


def _people():
    import yaml

    from alerts.recipients import People

    path = Path(os.environ.get("EA_CONFIG_DIR") or "config") / "routing.yml"
    routing = yaml.safe_load(path.read_text()) if path.exists() else {}
    return People.from_routing(routing or {})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="ea inbox", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the inbox web app (the default)")
    url = urllib.parse.urlsplit(public_url())
    serve.add_argument("--host", default=url.hostname or "127.0.0.1")
    serve.add_argument("--port", type=int, default=url.port or 3001)
    for name, helptext in (
        ("publish", "publish the inbox snapshot from the warehouse now"),
        ("apply", "write recorded actions into the warehouse now"),
    ):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("--database", default=None, help="warehouse file ($DUCKDB_DATABASE)")
    sub.add_parser("status", help="actions waiting for the warehouse; snapshot age")
    args = p.parse_args(argv)
    command = args.command or "serve"
    if command == "serve":
        import uvicorn

        from inbox.app import create_app

        host = getattr(args, "host", url.hostname or "127.0.0.1")
        port = getattr(args, "port", url.port or 3001)
        settings = settings_from_env()
        print(f"alert inbox on http://{host}:{port} (links in emails: {settings.public_url})")
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
        return 0
    if command == "status":
        from inbox import store

        con = store.connect(store_path())
        waiting, newest = store.pending_summary(con)
        snap = snapshot_path()
        age = (
            f"published {dt.datetime.fromtimestamp(snap.stat().st_mtime):%Y-%m-%d %H:%M:%S}"
            if snap.exists()
            else "not published yet"
        )
        print(f"actions waiting for the warehouse: {waiting}; snapshot {snap}: {age}")
        return 0
    con = _warehouse(args)
    try:
        if command == "publish":
            from inbox.snapshot import publish_app_snapshot

            print(publish_app_snapshot(con, snapshot_path(), _people()))
        else:
            from inbox import store
            from inbox.apply import apply_pending

            print(apply_pending(con, store.connect(store_path())).as_metadata())
    finally:
        con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
