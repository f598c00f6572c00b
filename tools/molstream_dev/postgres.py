"""A throwaway PostgreSQL cluster on loopback (Debian's binaries), one fresh database per test.

PostgreSQL refuses to run as root, so as root (CI) the cluster belongs to the `postgres` system
user that Debian's package creates."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path

from ._process import Managed, ServiceError, free_port
from .kafka import _run_dir

PROVISION = "tools/provision/services.sh"


def _bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                                                   reverse=True)), None)
    if not found:
        raise ServiceError(f"PostgreSQL's {name} is not installed: run `bash {PROVISION}` first")
    return found


class PostgresServer(Managed):
    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: do not wait for clients to disconnect

    def __init__(self, *, port: int | None = None) -> None:
        super().__init__()
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pg-", dir=_run_dir()))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self._as_user = "postgres" if os.geteuid() == 0 else None
        self.user = self._as_user or pwd.getpwuid(os.geteuid()).pw_name

    def _run_as(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", self._as_user, "--", *cmd] if self._as_user else cmd

    def start(self, *, timeout_s: float = 60) -> PostgresServer:
        if not (self.data / "PG_VERSION").exists():
            if self._as_user:
                shutil.chown(self.dir, self._as_user)
                os.chmod(self.dir, 0o755)
                self.log.touch()
                shutil.chown(self.log, self._as_user)
            subprocess.run(self._run_as([_bin("initdb"), "-D", str(self.data), "-A", "trust",
                                         "-U", self.user, "--no-sync", "-E", "UTF8"]),
                           check=True, capture_output=True)
        super().start(timeout_s=timeout_s)
        return self

    def command(self) -> list[str]:
        return self._run_as([_bin("postgres"), "-D", str(self.data), "-p", str(self.port),
                             "-c", "listen_addresses=127.0.0.1", "-k", str(self.dir),
                             "-c", "fsync=off", "-c", "synchronous_commit=off",
                             "-c", "full_page_writes=off", "-c", "max_connections=200"])

    def port_to_wait(self) -> int:
        return self.port

    def ready(self) -> None:
        import psycopg

        for _ in range(100):
            try:
                psycopg.connect(self._dsn("postgres")).close()
                return
            except psycopg.OperationalError:
                import time

                time.sleep(0.1)
        raise ServiceError("postgres did not accept connections", self.log)

    def _dsn(self, db: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{db}"

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{db}"

    def new_database(self, name: str | None = None) -> str:
        return create_database(self._dsn("postgres"), name)


def create_database(admin_dsn: str, name: str | None = None) -> str:
    """Create an empty database on the server of `admin_dsn`; return its SQLAlchemy URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = name or f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # name is ours, never user input
    url = make_url(admin_dsn).set(drivername="postgresql+psycopg", database=name)
    return url.render_as_string(hide_password=False)
