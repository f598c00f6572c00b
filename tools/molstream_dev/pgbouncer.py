"""Debian's PgBouncer on loopback in front of a PostgresServer, as a pooler on Kubernetes
(CloudNativePG's Pooler, a PgBouncer Deployment) sits in front of the database.

    with PgBouncer(pg) as bouncer:                 # transaction pooling unless told otherwise
        bouncer.url_for(pg.new_login("app"))       # the same login, through the pooler

TLS on both sides: clients must verify PgBouncer's certificate (127.0.0.1/localhost, signed by
certs.test_ca(); plaintext is refused), and PgBouncer verifies the server's (server_tls_sslmode
verify-full), as a pooler reaching CloudNativePG does. Logins are checked the way CloudNativePG's
Pooler does it: `auth_query` looks up the role's SCRAM secret on the server (as the cluster's
superuser, whom the test server trusts over TLS), so any role made with `new_login` works
through the pooler without a list of users to keep.

PgBouncer refuses to run as root: as root it runs as the PostgreSQL cluster's user.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from ._process import PROVISION, Managed, ServiceError, free_port
from .certs import issue_cert, test_ca
from .postgres import PostgresServer, run_as_options

# The role's SCRAM secret, read by auth_user: what CloudNativePG's Pooler asks its cluster.
_AUTH_QUERY = "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = $1 AND rolcanlogin"


def _binary() -> str:
    found = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None)
    if not found:
        raise ServiceError(f"pgbouncer is not installed: run `sudo bash {PROVISION}`")
    return found


class PgBouncer(Managed):
    name = "pgbouncer"
    stop_signal = signal.SIGTERM  # immediate shutdown (SIGINT would wait for clients)

    def __init__(self, server: PostgresServer, *, pool_mode: str = "transaction",
                 pool_size: int = 10, port: int | None = None,
                 data_dir: Path | None = None) -> None:
        self._binary = _binary()  # fail early, with the provision hint
        super().__init__(data_dir)
        self.server = server
        self.pool_mode = pool_mode
        self.pool_size = pool_size
        self.port = port or free_port()
        self.run_as = server.run_as

    def url_for(self, login_url: str) -> str:
        """`login_url` (a URL of the server's, e.g. new_login's) through this pooler, with
        sslmode=verify-full and the test CA."""
        parts = urlsplit(login_url)
        host = f"{parts.netloc.rpartition('@')[0]}@127.0.0.1:{self.port}"
        tls = f"sslmode=verify-full&sslrootcert={quote(str(test_ca()[0]), safe='')}"
        return urlunsplit((parts.scheme, host, parts.path, tls, ""))

    def popen_options(self) -> dict:
        return run_as_options(self.run_as)

    def prepare(self) -> None:
        tls = self.dir / "tls"
        tls.mkdir(exist_ok=True)
        cert, key = issue_cert("pgbouncer")
        for src, dst in ((cert, tls / "pgbouncer.crt"), (key, tls / "pgbouncer.key"),
                         (test_ca()[0], tls / "ca.crt")):
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o600)
            if self.run_as:
                shutil.chown(dst, self.run_as, self.run_as)
        # auth_user's own entry: the server trusts it over TLS, the password is never checked.
        (self.dir / "userlist.txt").write_text(f'"{self.server.user}" ""\n')
        (self.dir / "pgbouncer.ini").write_text(f"""\
[databases]
* = host=127.0.0.1 port={self.server.port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
pool_mode = {self.pool_mode}
default_pool_size = {self.pool_size}
max_client_conn = 200
auth_type = scram-sha-256
auth_file = {self.dir / 'userlist.txt'}
auth_user = {self.server.user}
auth_query = {_AUTH_QUERY}
client_tls_sslmode = require
client_tls_cert_file = {tls / 'pgbouncer.crt'}
client_tls_key_file = {tls / 'pgbouncer.key'}
server_tls_sslmode = verify-full
server_tls_ca_file = {tls / 'ca.crt'}
""")
        if self.run_as:
            for f in (self.log, self.dir / "userlist.txt", self.dir / "pgbouncer.ini"):
                f.touch()
                shutil.chown(f, self.run_as, self.run_as)
            os.chmod(self.dir, 0o755)

    def command(self) -> list[str]:
        return [self._binary, str(self.dir / "pgbouncer.ini")]
