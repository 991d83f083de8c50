"""A real, throwaway Postgres server for tests: Debian's postgresql-15, initdb + pg_ctl in a
temporary folder on a free port, password authentication (scram-sha-256).

When `initdb`/`pg_ctl` are missing, `ensure_postgres()` installs `postgresql-15` with apt-get
(as .ci/run does before `make test`). As root, the server runs as the `postgres` user the package
creates (initdb refuses to run as root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

USER = "ea"
PASSWORD = "test-password-not-secret"


def _bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return versions[0].parent if versions else None


def ensure_postgres() -> Path:
    """The folder holding initdb and pg_ctl; installs postgresql-15 with apt-get if needed."""
    found = _bin_dir()
    if found is not None:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError(
            "Postgres server binaries (initdb, pg_ctl) are missing: install postgresql-15 "
            "(apt-get install postgresql-15)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql-15"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
        subprocess.run(install, env=env, check=True, capture_output=True)
    found = _bin_dir()
    if found is None:
        raise RuntimeError("postgresql-15 installed but initdb/pg_ctl not found")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path
    port: int

    def url(self, database: str, password: str = PASSWORD, user: str = USER) -> str:
        """The SQLAlchemy URL (the form the product's configuration takes)."""
        return f"postgresql+psycopg2://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        """The libpq URL (psycopg2.connect, psql, pg_dump)."""
        return self.url(database).replace("+psycopg2", "")

    def create_database(self, name: str) -> str:
        import psycopg2

        con = psycopg2.connect(self.dsn("postgres"))
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute(f'create database "{name}"')
        finally:
            con.close()
        return self.url(name)

    def stop(self) -> None:
        _run(self, [str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast",
                    "-w", "stop"], check=False)  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


def _as_owner() -> dict:
    """Run as `postgres` when we are root (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam("postgres")
    return {"user": user.pw_uid, "group": user.pw_gid}


def _run(server: PostgresServer, cmd: list[str], check: bool = True):
    return subprocess.run(
        cmd, cwd=server.root, capture_output=True, text=True, check=check, **_as_owner()
    )


def start_postgres() -> PostgresServer:
    bin_dir = ensure_postgres()
    root = Path(tempfile.mkdtemp(prefix="ea-pg-"))
    owner = _as_owner()
    if owner:
        os.chown(root, owner["user"], owner["group"])
    server = PostgresServer(bin_dir, root, free_port())
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if owner:
        os.chown(pwfile, owner["user"], owner["group"])
    _run(server, [str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", USER,
                  "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync",
                  "--no-instructions"])  # fmt: skip
    options = (
        f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c full_page_writes=off -c synchronous_commit=off"
    )
    start = [str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-o", options,
             "-l", str(root / "server.log"), "-w", "-t", "60", "start"]  # fmt: skip
    done = _run(server, start, check=False)
    if done.returncode != 0:
        log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        raise RuntimeError(f"pg_ctl start failed: {done.stderr}\n{log[-2000:]}")
    return server
