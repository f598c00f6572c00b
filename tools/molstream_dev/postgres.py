"""A throwaway PostgreSQL cluster on loopback (Debian's binaries); fresh databases on demand.

    with PostgresServer() as pg:
        pg.url                 # "postgresql+psycopg://USER@127.0.0.1:PORT/molstream?sslmode=..."
        pg.new_database()      # URL of a new, empty database
        pg.new_login("app")    # a CloudNativePG-style `uri`: postgresql://app:PASS@.../app

TCP takes TLS only (a certificate for 127.0.0.1 and localhost signed by certs.test_ca()); a
plaintext connection is refused by pg_hba. Every URL handed out asks for `sslmode=verify-full`
with the test CA as `sslrootcert`, so every client verifies the server as a user's would. The
cluster's own superuser is trusted over TLS; any other login needs its password (SCRAM). The
Unix socket in the run directory stays open to everyone on the machine, with no password.

PostgreSQL refuses to run as root, so as root (CI) the cluster belongs to the `postgres` system
user that Debian's package creates (`nobody` if there is none). The postmaster runs directly
under us rather than through `pg_ctl`, so stop()/kill() hit it exactly like any other service.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import quote

from ._process import PROVISION, Managed, ServiceError, free_port
from .certs import issue_cert, test_ca


def pg_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise ServiceError(f"PostgreSQL's {name} is not installed: run `sudo bash {PROVISION}`")
    return found


def system_user() -> str | None:
    """Who runs the cluster when we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise ServiceError("running as root and neither a `postgres` nor a `nobody` user exists")


def run_as_options(user: str | None) -> dict:
    """Popen arguments that run the child as `user` (None: as we are)."""
    # Switch user in the child itself rather than through runuser: the postmaster is then
    # our own child, reaped at once after a kill(), so a restart never finds its PID
    # still taken in postmaster.pid.
    if not user:
        return {}
    pw = pwd.getpwnam(user)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


class PostgresServer(Managed):
    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: do not wait for clients to disconnect

    def __init__(self, *, port: int | None = None, data_dir: Path | None = None,
                 database: str = "molstream") -> None:
        self._initdb = pg_bin("initdb")  # fail early, with the provision hint
        super().__init__(data_dir)
        self.port = port or free_port()
        self.data = self.dir / "data"
        self.database = database
        self.run_as = system_user()
        self.user = self.run_as or pwd.getpwuid(os.geteuid()).pw_name

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the database made at first start."""
        return self.url_for(self.database)

    @property
    def ca_file(self) -> Path:
        """The CA a client must trust (libpq's sslrootcert) to verify this server."""
        return test_ca()[0]

    @property
    def tls_query(self) -> str:
        return f"sslmode=verify-full&sslrootcert={quote(str(self.ca_file), safe='')}"

    def url_for(self, db: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{db}?{self.tls_query}"

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres?{self.tls_query}"

    def popen_options(self) -> dict:
        return run_as_options(self.run_as)

    def prepare(self) -> None:
        if not (self.data / "PG_VERSION").exists():
            self._initdb_cluster()
        self._install_tls()

    def _initdb_cluster(self) -> None:
        if self.run_as:
            shutil.chown(self.dir, self.run_as)
            os.chmod(self.dir, 0o755)
            self.log.touch()
            shutil.chown(self.log, self.run_as)
        done = subprocess.run(
            [self._initdb, "-D", str(self.data), "-A", "trust", "-U", self.user, "--no-sync",
             "-E", "UTF8", "--locale", "C"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=self.dir,
            **self.popen_options())
        if done.returncode != 0:
            hint = (f" (can user {self.run_as} reach {self.dir}? every parent directory must "
                    "be searchable by it)" if self.run_as else "")
            raise ServiceError(f"initdb failed{hint}:\n{done.stdout[-3000:]}")

    def _install_tls(self) -> None:
        """The server's certificate and key, copied where the server's user owns them (the
        server refuses a key others may read), and a pg_hba.conf that takes TLS only on TCP."""
        cert, key = issue_cert("postgres")
        tls = self.dir / "tls"
        tls.mkdir(exist_ok=True)
        for src, dst in ((cert, tls / "server.crt"), (key, tls / "server.key")):
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o600)
            if self.run_as:
                shutil.chown(dst, self.run_as, self.run_as)
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"hostssl all {self.user} 127.0.0.1/32 trust\n"
            "hostssl all all 127.0.0.1/32 scram-sha-256\n"
            "hostnossl all all 0.0.0.0/0 reject\n")

    def command(self) -> list[str]:
        # No fsync: a commit still reaches the kernel before it is acknowledged, so killing
        # the server loses nothing (only a machine crash would), at a fraction of the cost.
        # synchronous_commit stays on: off, a kill() would drop acknowledged commits.
        return [pg_bin("postgres"), "-D", str(self.data), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-k", str(self.dir),
                "-c", "ssl=on", "-c", f"ssl_cert_file={self.dir / 'tls' / 'server.crt'}",
                "-c", f"ssl_key_file={self.dir / 'tls' / 'server.key'}",
                "-c", "fsync=off", "-c", "full_page_writes=off",
                "-c", "max_connections=200", "-c", "shared_buffers=128MB"]

    def ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
                    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                          (self.database,)).fetchone()
                if not exists:
                    self.new_database(self.database)
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise ServiceError("postgres did not accept connections", self.log) from None
                time.sleep(0.1)

    def new_database(self, name: str | None = None) -> str:
        """Create an empty database; return its SQLAlchemy URL."""
        return create_database(self.admin_dsn, name)

    def new_login(self, user: str | None = None) -> str:
        """A role with a password and a database it owns, as CloudNativePG's `<cluster>-app`
        Secret describes them: its `uri`, postgresql://USER:PASSWORD@127.0.0.1:PORT/USER,
        without TLS parameters (a client gets those from PGSSLMODE/PGSSLROOTCERT)."""
        import psycopg
        from psycopg import sql

        user = user or f"u_{uuid.uuid4().hex[:12]}"
        password = uuid.uuid4().hex
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(user), sql.Literal(password)))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(user), sql.Identifier(user)))
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{user}"

    def drop_database(self, name: str) -> bool:
        return drop_database(self.admin_dsn, name)


def create_database(server_url: str, name: str | None = None) -> str:
    """Create an empty database on the server of `server_url` (a libpq or SQLAlchemy URL);
    return the new database's SQLAlchemy URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = name or f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # name is ours, never user input
    url = make_url(server_url).set(drivername="postgresql+psycopg", database=name)
    return url.render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> bool:
    """Drop a database if nothing is connected to it any more; False if it could not be."""
    import psycopg

    name = name.split("?", 1)[0]  # a name cut from a URL with rsplit("/") keeps its query
    try:
        with psycopg.connect(_libpq(server_url, "postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')  # name is ours
        return True
    except psycopg.Error:
        return False


def _libpq(url: str, database: str | None = None) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(url).set(drivername="postgresql")
    if database is not None:
        u = u.set(database=database)
    return u.render_as_string(hide_password=False)
