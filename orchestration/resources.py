"""Resources shared by every stage, configured from environment variables when built."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import yaml
from dagster_duckdb import DuckDBResource

from warehouse.analyst import ANALYST_FILE


class PathsResource(dg.ConfigurableResource):
    """Where the pipeline finds its files: landing folder, editable config, generated data."""

    data_dir: str
    landing_dir: str
    config_dir: str
    # Where runs publish the analyst database; empty = analyst.duckdb in the data folder.
    analyst_database: str = ""

    @property
    def data(self) -> Path:
        return Path(self.data_dir)

    @property
    def landing(self) -> Path:
        return Path(self.landing_dir)

    @property
    def config(self) -> Path:
        return Path(self.config_dir)

    @property
    def analyst(self) -> Path:
        return Path(self.analyst_database) if self.analyst_database else self.data / ANALYST_FILE

    @property
    def email_templates(self) -> Path:
        return self.config / "templates" / "email"

    def routing(self) -> dict:
        """config/routing.yml as written (empty when there is none); alerts.rules validates it."""
        path = self.config / "routing.yml"
        return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


class InboxResource(dg.ConfigurableResource):
    """The alert inbox as the pipeline sees it: the URL emails link to (EA_PUBLIC_URL), the
    secret that signs action links (EA_SECRET_KEY; generated into the data folder when unset),
    how long links work, where the inbox keeps its actions and reads its snapshot.
    """

    public_url: str = "http://127.0.0.1:3001"
    secret_key: str = ""
    link_days: int = 14
    store_path: str = ""
    snapshot_path: str = ""

    def links(self, data_dir: Path):
        from notifications.links import ActionLinks, load_or_create_secret

        return ActionLinks(
            public_url=self.public_url.rstrip("/"),
            secret=load_or_create_secret(self.secret_key, data_dir),
            days=int(self.link_days),
        )

    def store(self, data_dir: Path) -> Path:
        return Path(self.store_path) if self.store_path else Path(data_dir) / "inbox.sqlite"

    def snapshot(self, data_dir: Path) -> Path:
        if self.snapshot_path:
            return Path(self.snapshot_path)
        return Path(data_dir) / "app_snapshot.duckdb"


def _env_or(name: str, default: object) -> object:
    """dg.EnvVar when the variable is set (resolved at run time, shown by name), else default."""
    if name not in os.environ:
        return default
    return dg.EnvVar.int(name) if isinstance(default, int) else dg.EnvVar(name)


def inbox_resource() -> InboxResource:
    return InboxResource(
        public_url=_env_or("EA_PUBLIC_URL", "http://127.0.0.1:3001"),
        secret_key=_env_or("EA_SECRET_KEY", ""),
        link_days=_env_or("EA_LINK_DAYS", 14),
        store_path=_env_or("EA_INBOX_DB", ""),
        snapshot_path=_env_or("EA_APP_SNAPSHOT", ""),
    )


# DuckDB's buffer pool, for Dagster's connections and dbt's alike: beyond it, joins, sorts and
# windows spill to `<warehouse>.tmp/`, so a run's memory stays bounded as the data grows.
DEFAULT_MEMORY_LIMIT = "2GB"


def duckdb_memory_limit() -> str:
    return os.environ.get("EA_DUCKDB_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT


def automation_on() -> bool:
    """Whether the sensors and schedules that run the pipeline unattended (new landing days, the
    morning catch-up, SLA escalations, weekly training) start RUNNING. On in the production
    profile (EA_PROFILE=production), off in the embedded one (the demo runs its jobs itself);
    EA_AUTOMATION=on|off overrides. Only the default: a person who stops one in the UI keeps it
    stopped (Dagster stores that choice in the instance).
    """
    default = "on" if os.environ.get("EA_PROFILE", "").strip().lower() == "production" else "off"
    return (os.environ.get("EA_AUTOMATION") or default).strip().lower() == "on"


def sensor_default() -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if automation_on() else dg.DefaultSensorStatus.STOPPED


def schedule_default() -> dg.DefaultScheduleStatus:
    running = dg.DefaultScheduleStatus.RUNNING
    return running if automation_on() else dg.DefaultScheduleStatus.STOPPED


def shared_resources() -> dict[str, object]:
    """The resources every stage may ask for, by parameter name."""
    return {
        "duckdb": DuckDBResource(
            database=dg.EnvVar("DUCKDB_DATABASE"),
            connection_config={"memory_limit": duckdb_memory_limit()},
        ),
        "paths": PathsResource(
            data_dir=dg.EnvVar("EA_DATA_DIR"),
            landing_dir=dg.EnvVar("EA_LANDING_DIR"),
            config_dir=dg.EnvVar("EA_CONFIG_DIR"),
            # Read when set (only its presence is checked here, when definitions load).
            analyst_database=(
                dg.EnvVar("EA_ANALYST_DATABASE") if os.environ.get("EA_ANALYST_DATABASE") else ""
            ),
        ),
    }
