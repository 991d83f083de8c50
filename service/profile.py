"""The two profiles, chosen by configuration: `embedded` (the demo's defaults) and `production`.

`EA_PROFILE=embedded` (the default) keeps everything in files under the data folder: the Dagster
instance on sqlite in $DAGSTER_HOME, MLflow on a sqlite file. `EA_PROFILE=production` puts the
Dagster instance (runs, event logs, schedules, sensor cursors) on Postgres through
dagster-postgres (`EA_DAGSTER_POSTGRES_URL`), runs an MLflow tracking server whose backend store is
Postgres (`EA_MLFLOW_BACKEND_URI`) and whose artifacts live in a folder, and the pipeline talks to
that server (`MLFLOW_TRACKING_URI=http://...`). The warehouse, landing and data folders are
wherever the variables say. Nothing in the code changes between the two: only the environment
file the services read.

An environment file is `NAME=value` lines (comments start a line with `#`; an optional `export `
prefix and one pair of surrounding quotes are removed; nothing else is interpreted), the format
both systemd's `EnvironmentFile=` and compose's `env_file:` read, so the same file serves
`ea serve`, the systemd units and the compose file.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROFILES = ("embedded", "production")
# The Dagster instance configuration each profile installs into $DAGSTER_HOME/dagster.yaml.
INSTANCE_TEMPLATES = {
    "embedded": REPO / "dagster.yaml",
    "production": REPO / "deploy" / "dagster.production.yaml",
}
# SQLAlchemy 2.1 (Dagster's and MLflow's) reads a bare postgresql:// as the psycopg 3 driver,
# which the product does not install (psycopg2 comes with dagster-postgres) and with which
# Dagster's event notifications fail: URLs name psycopg2.
POSTGRES_SCHEME = "postgresql+psycopg2"


class EnvFileError(ValueError):
    """A line of an environment file that is not `NAME=value` (the message names it)."""


def read_env_file(path: str | Path) -> dict[str, str]:
    """The variables of an environment file (see the module docstring for the format)."""
    path = Path(path)
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name.replace("_", "a").isalnum() or name[0].isdigit():
            raise EnvFileError(f"{path}:{number}: expected NAME=value, got {raw.strip()!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


def load_env_file(path: str | Path, environ: MutableMapping[str, str]) -> int:
    """Put the file's variables into the environment; the file wins over inherited values (it
    is the services' configuration; the Makefile's embedded defaults must not override it).
    Returns how many variables were set.
    """
    values = read_env_file(path)
    environ.update(values)
    return len(values)


def _hostport(url: str, default_port: int) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _listen(value: str, default: tuple[str, int]) -> tuple[str, int]:
    """`host:port` (or just `port`) -> (host, port)."""
    if not value:
        return default
    host, _, port = value.rpartition(":")
    return (host or default[0]), int(port)


def redact(url: str) -> str:
    """A URL without its password (for messages and logs)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class Settings:
    """Everything the services and the checks need, read from the environment."""

    profile: str
    data_dir: Path
    landing_dir: Path
    config_dir: Path
    warehouse: Path
    analyst_database: Path
    dagster_home: Path
    log_dir: Path
    mlflow_tracking_uri: str
    mlflow_backend_uri: str
    mlflow_listen: tuple[str, int]
    dagster_postgres_url: str
    dagster_listen: tuple[str, int]
    dagster_url: str
    inbox_listen: tuple[str, int]
    public_url: str
    secret_key_set: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """The settings from an environment (a command line passes `os.environ`)."""
        data = Path(env.get("EA_DATA_DIR") or "data")
        tracking = env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{data / 'mlflow.db'}"
        is_http = tracking.startswith(("http://", "https://"))
        dagster_listen = _listen(env.get("EA_DAGSTER_LISTEN", ""), ("127.0.0.1", 3000))
        public = (env.get("EA_PUBLIC_URL") or "http://127.0.0.1:3001").rstrip("/")
        return cls(
            profile=(env.get("EA_PROFILE") or "embedded").strip().lower(),
            data_dir=data,
            landing_dir=Path(env.get("EA_LANDING_DIR") or data / "landing"),
            config_dir=Path(env.get("EA_CONFIG_DIR") or "config"),
            warehouse=Path(env.get("DUCKDB_DATABASE") or data / "warehouse.duckdb"),
            analyst_database=Path(env.get("EA_ANALYST_DATABASE") or data / "analyst.duckdb"),
            dagster_home=Path(env.get("DAGSTER_HOME") or ".dagster_home"),
            log_dir=Path(env.get("EA_LOG_DIR") or data / "logs"),
            mlflow_tracking_uri=tracking,
            # Where the MLflow server keeps runs and the registry: the tracking URI itself when
            # that is a database (embedded), else EA_MLFLOW_BACKEND_URI (Postgres in production).
            mlflow_backend_uri=env.get("EA_MLFLOW_BACKEND_URI") or ("" if is_http else tracking),
            mlflow_listen=_listen(
                env.get("EA_MLFLOW_LISTEN", ""),
                _hostport(tracking, 5000) if is_http else ("127.0.0.1", 5000),
            ),
            dagster_postgres_url=env.get("EA_DAGSTER_POSTGRES_URL", ""),
            dagster_listen=dagster_listen,
            dagster_url=(
                env.get("EA_DAGSTER_URL") or f"http://{dagster_listen[0]}:{dagster_listen[1]}"
            ).rstrip("/"),
            inbox_listen=_listen(env.get("EA_INBOX_LISTEN", ""), _hostport(public, 3001)),
            public_url=public,
            secret_key_set=bool(env.get("EA_SECRET_KEY")),
        )

    @property
    def production(self) -> bool:
        return self.profile == "production"

    @property
    def mlflow_artifacts(self) -> Path:
        """The artifact folder (the training step writes model files here; see orchestration
        /defs/ml.py), served by the MLflow server.
        """
        return self.data_dir / "mlflow-artifacts"

    @property
    def mlflow_url(self) -> str:
        host, port = self.mlflow_listen
        return f"http://{host}:{port}"

    def problems(self) -> list[tuple[str, str]]:
        """What is wrong with the configuration: (problem, the fix in one line) pairs."""
        out: list[tuple[str, str]] = []
        if self.profile not in PROFILES:
            problem = f"EA_PROFILE={self.profile!r} is not a profile"
            out.append((problem, "set EA_PROFILE to embedded or production"))
            return out
        if not self.production:
            return out
        if not self.dagster_postgres_url:
            out.append(
                (
                    "the production profile keeps the Dagster instance on Postgres, but "
                    "EA_DAGSTER_POSTGRES_URL is not set",
                    f"set EA_DAGSTER_POSTGRES_URL={POSTGRES_SCHEME}://USER:PASSWORD@HOST:5432/"
                    "ea_dagster in the environment file",
                )
            )
        elif urllib.parse.urlsplit(self.dagster_postgres_url).scheme != POSTGRES_SCHEME:
            out.append(
                (
                    f"EA_DAGSTER_POSTGRES_URL={redact(self.dagster_postgres_url)} does not start "
                    f"with {POSTGRES_SCHEME}://",
                    f"write it as {POSTGRES_SCHEME}://USER:PASSWORD@HOST:5432/ea_dagster",
                )
            )
        if not self.mlflow_tracking_uri.startswith(("http://", "https://")):
            out.append(
                (
                    f"MLFLOW_TRACKING_URI={redact(self.mlflow_tracking_uri)}: in production the "
                    "pipeline talks to the MLflow server",
                    "set MLFLOW_TRACKING_URI=http://127.0.0.1:5000 (where `ea serve` runs it)",
                )
            )
        if urllib.parse.urlsplit(self.mlflow_backend_uri).scheme != POSTGRES_SCHEME:
            out.append(
                (
                    f"the MLflow server's store is not a {POSTGRES_SCHEME}:// URL "
                    f"(EA_MLFLOW_BACKEND_URI={redact(self.mlflow_backend_uri) or 'unset'})",
                    f"set EA_MLFLOW_BACKEND_URI={POSTGRES_SCHEME}://USER:PASSWORD@HOST:5432/"
                    "ea_mlflow",
                )
            )
        if self.dagster_postgres_url and self.dagster_postgres_url == self.mlflow_backend_uri:
            out.append(
                (
                    "Dagster and MLflow share one Postgres database (both keep an "
                    "alembic_version table: their migrations would collide)",
                    "give MLflow its own database, e.g. .../ea_mlflow",
                )
            )
        if not self.secret_key_set:
            out.append(
                (
                    "EA_SECRET_KEY is not set (it signs action links and inbox sessions; a "
                    "generated one would change with the data folder)",
                    "set EA_SECRET_KEY to the output of `python -c 'import secrets; "
                    "print(secrets.token_urlsafe(48))'`",
                )
            )
        for name, path in (
            ("EA_DATA_DIR", self.data_dir),
            ("EA_LANDING_DIR", self.landing_dir),
            ("DUCKDB_DATABASE", self.warehouse),
            ("DAGSTER_HOME", self.dagster_home),
        ):
            if not path.is_absolute():
                out.append(
                    (
                        f"{name}={path} is relative (services may start in another folder)",
                        f"give {name} an absolute path in the environment file",
                    )
                )
        return out


def instance_yaml(profile: str) -> str:
    """The Dagster instance configuration (dagster.yaml) of a profile."""
    return INSTANCE_TEMPLATES[profile].read_text(encoding="utf-8")


def instance_storage(dagster_home: Path) -> str:
    """Which storage $DAGSTER_HOME/dagster.yaml configures: postgres, sqlite (the default), or
    'missing' when there is no file.
    """
    import yaml

    path = Path(dagster_home) / "dagster.yaml"
    if not path.exists():
        return "missing"
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    storage = doc.get("storage") or {}
    if "postgres" in storage or "postgres" in str(doc.get("run_storage", "")).lower():
        return "postgres"
    return "sqlite"


def install_instance_yaml(settings: Settings) -> str | None:
    """Write the profile's dagster.yaml into $DAGSTER_HOME when it differs; the file it
    replaces is kept beside it as dagster.yaml.previous. Returns what was done, or None.
    """
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    wanted = instance_yaml(settings.profile)
    current = target.read_text(encoding="utf-8") if target.exists() else None
    if current == wanted:
        return None
    if current is not None:
        (home / "dagster.yaml.previous").write_text(current, encoding="utf-8")
    target.write_text(wanted, encoding="utf-8")
    source = INSTANCE_TEMPLATES[settings.profile].relative_to(REPO)
    kept = " (the old file is dagster.yaml.previous)" if current is not None else ""
    return f"installed the {settings.profile} instance configuration ({source}) as {target}{kept}"
