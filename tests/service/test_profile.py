"""Profiles: the environment file, the settings and the Dagster instance configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from service.profile import (
    EnvFileError,
    Settings,
    install_instance_yaml,
    instance_storage,
    read_env_file,
)

REPO = Path(__file__).resolve().parents[2]
PG = "postgresql+psycopg2://ea:pw@db:5432"


def test_the_environment_file_reads_as_systemd_and_compose_read_it(tmp_path):
    f = tmp_path / "ea.env"
    f.write_text(
        "# comment\n\n"
        "EA_PROFILE=production\n"
        "export SMTP_HOST=mail.example.com\n"
        'EA_MAIL_FROM="Engagement Alerts <alerts@example.com>"\n'
        "SMTP_PASSWORD='p=a#ss'\n"
        "EMPTY=\n"
    )
    assert read_env_file(f) == {
        "EA_PROFILE": "production",
        "SMTP_HOST": "mail.example.com",
        "EA_MAIL_FROM": "Engagement Alerts <alerts@example.com>",
        "SMTP_PASSWORD": "p=a#ss",
        "EMPTY": "",
    }
    f.write_text("EA_PROFILE=production\nthis is not a variable\n")
    with pytest.raises(EnvFileError, match=r"ea.env:2: expected NAME=value"):
        read_env_file(f)


def test_the_shipped_examples_are_valid_environment_files():
    for name in (".env.example", "deploy/ea.env.example"):
        values = read_env_file(REPO / name)
        assert values, name
    prod = read_env_file(REPO / "deploy" / "ea.env.example")
    assert prod["EA_PROFILE"] == "production"
    problems = Settings.from_env(prod).problems()
    # The example has placeholders for the secrets and nothing else missing.
    assert problems == [], problems


def test_embedded_defaults_need_nothing():
    assert Settings.from_env({}).problems() == []
    s = Settings.from_env({"EA_DATA_DIR": "/srv/ea"})
    assert s.mlflow_backend_uri == "sqlite:////srv/ea/mlflow.db"
    assert s.mlflow_listen == ("127.0.0.1", 5000)


def test_production_settings_point_at_postgres_and_the_mlflow_server():
    env = {
        "EA_PROFILE": "production",
        "EA_DATA_DIR": "/srv/ea",
        "EA_LANDING_DIR": "/srv/landing",
        "DUCKDB_DATABASE": "/srv/ea/warehouse.duckdb",
        "DAGSTER_HOME": "/srv/ea/dagster",
        "EA_DAGSTER_POSTGRES_URL": f"{PG}/ea_dagster",
        "EA_MLFLOW_BACKEND_URI": f"{PG}/ea_mlflow",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5055",
        "EA_SECRET_KEY": "s" * 40,
    }
    s = Settings.from_env(env)
    assert s.problems() == []
    assert s.mlflow_listen == ("127.0.0.1", 5055)
    assert s.mlflow_artifacts == Path("/srv/ea/mlflow-artifacts")
    bare = {**env, "EA_DAGSTER_POSTGRES_URL": "postgresql://ea:pw@db/ea_dagster"}
    (problem, fix), = Settings.from_env(bare).problems()
    assert "does not start with postgresql+psycopg2://" in problem and "pw" not in problem
    shared = {**env, "EA_MLFLOW_BACKEND_URI": env["EA_DAGSTER_POSTGRES_URL"]}
    assert "alembic_version" in Settings.from_env(shared).problems()[0][0]
    relative = {**env, "DUCKDB_DATABASE": "data/warehouse.duckdb"}
    assert "DUCKDB_DATABASE=data/warehouse.duckdb is relative" in Settings.from_env(
        relative
    ).problems()[0][0]


def test_serve_installs_the_profiles_instance_configuration(tmp_path):
    home = tmp_path / "home"
    env = {"DAGSTER_HOME": str(home), "EA_PROFILE": "production"}
    assert instance_storage(home) == "missing"
    assert "installed the production instance configuration" in install_instance_yaml(
        Settings.from_env(env)
    )
    assert instance_storage(home) == "postgres"
    doc = yaml.safe_load((home / "dagster.yaml").read_text())
    assert doc["storage"]["postgres"]["postgres_url"] == {"env": "EA_DAGSTER_POSTGRES_URL"}
    assert install_instance_yaml(Settings.from_env(env)) is None  # already there
    embedded = install_instance_yaml(Settings.from_env({**env, "EA_PROFILE": "embedded"}))
    assert "dagster.yaml.previous" in embedded
    assert instance_storage(home) == "sqlite"
    assert "postgres" in (home / "dagster.yaml.previous").read_text()
