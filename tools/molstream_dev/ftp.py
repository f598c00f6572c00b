"""An FTP or explicit-FTPS server (pyftpdlib) serving one directory, in its own process.

    with FtpServer(root, tls=True, cut_after_bytes=1_000_000) as ftp:
        ftp.url("a.csv")       # "ftps://USER:PASS@127.0.0.1:PORT/a.csv"
        ftp.cuts               # data connections dropped on purpose so far
        ftp.set_faults(throttle_bps=50_000)   # change faults while it runs

Faults for the reliability tests: `throttle_bps` slows every download; `cut_after_bytes`
drops the data connection once, exactly that many bytes into a transfer (the server answers
426), so a client must resume with REST. Faults live in a small JSON control file the server
re-reads for each new data connection; set_faults() rewrites it and re-arms the cut.
`python -m molstream_dev.ftp ROOT --port P --state-dir D ...` is the process it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from ._process import Managed, free_port
from .certs import self_signed

CONTROL = "faults.json"


class FtpServer(Managed):
    name = "ftp"
    host = "127.0.0.1"

    def __init__(self, root: Path, *, user: str = "molstream", password: str = "s3cret-ftp",
                 tls: bool = False, port: int | None = None, throttle_bps: int = 0,
                 cut_after_bytes: int = 0, writable: bool = False,
                 data_dir: Path | None = None) -> None:
        super().__init__(data_dir)
        self.root, self.user, self.password, self.tls = Path(root), user, password, tls
        self.port = port or free_port()
        self.writable = writable
        self.cert = self_signed()[0] if tls else None  # the CA file clients must trust
        self._generation = 0
        self.set_faults(throttle_bps=throttle_bps, cut_after_bytes=cut_after_bytes)

    def url(self, path: str = "", *, with_credentials: bool = True) -> str:
        scheme = "ftps" if self.tls else "ftp"
        auth = f"{self.user}:{self.password}@" if with_credentials else ""
        return f"{scheme}://{auth}{self.host}:{self.port}/{path.lstrip('/')}"

    def set_faults(self, *, throttle_bps: int | None = None,
                   cut_after_bytes: int | None = None) -> None:
        """Change faults for the next data connections; a cut is armed again (once)."""
        current = self.faults
        self._generation += 1
        faults = {
            "throttle_bps": current["throttle_bps"] if throttle_bps is None else throttle_bps,
            "cut_after_bytes": (current["cut_after_bytes"] if cut_after_bytes is None
                                else cut_after_bytes),
            "generation": self._generation,
        }
        tmp = self.dir / (CONTROL + ".tmp")
        tmp.write_text(json.dumps(faults))
        tmp.replace(self.dir / CONTROL)  # atomic: the server never reads half a file

    @property
    def faults(self) -> dict:
        try:
            return json.loads((self.dir / CONTROL).read_text())
        except FileNotFoundError:
            return {"throttle_bps": 0, "cut_after_bytes": 0, "generation": 0}

    @property
    def cuts(self) -> int:
        """How many times the server dropped a data connection on purpose."""
        return len(list(self.dir.glob("cut-*")))

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "molstream_dev.ftp", str(self.root), "--port", str(self.port),
               "--user", self.user, "--state-dir", str(self.dir)]
        return cmd + ["--tls"] * self.tls + ["--writable"] * self.writable

    def env(self) -> dict[str, str]:
        # The password goes through the environment: argv is visible to every user in `ps`.
        return {**os.environ, "MOLSTREAM_DEV_FTP_PASSWORD": self.password}


class _Faults:
    """Server side of the control file: re-read when it changes; the cut is consumed once."""

    def __init__(self, state: Path) -> None:
        self.state, self._mtime, self.current = state, None, {}
        # The generation whose cut already happened; kept in the cut files, so that a
        # restarted server does not cut again.
        done = [int(f.read_text() or 0) for f in state.glob("cut-*")]
        self.cut_generation = max(done, default=0)

    def load(self) -> dict:
        path = self.state / CONTROL
        try:
            mtime = path.stat().st_mtime_ns
            if mtime != self._mtime:
                self.current, self._mtime = json.loads(path.read_text()), mtime
        except (OSError, ValueError):
            pass
        return self.current

    def cut_pending(self) -> bool:
        f = self.current
        return bool(f.get("cut_after_bytes")) and f.get("generation") != self.cut_generation

    def consume_cut(self) -> None:
        self.cut_generation = self.current.get("generation")
        n = len(list(self.state.glob("cut-*"))) + 1
        (self.state / f"cut-{n}").write_text(str(self.cut_generation))


def _serve(argv: list[str]) -> None:
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import DTPHandler, FTPHandler, ThrottledDTPHandler
    from pyftpdlib.servers import FTPServer
    from pyftpdlib.utils import is_ssl_sock

    p = argparse.ArgumentParser()
    p.add_argument("root")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--tls", action="store_true")
    p.add_argument("--writable", action="store_true")
    args = p.parse_args(argv)
    faults = _Faults(Path(args.state_dir))

    if args.tls:
        from pyftpdlib.handlers import TLS_DTPHandler, TLS_FTPHandler

        # TLS first in the MRO: the throttle and the cut then count plaintext bytes.
        bases, control = (TLS_DTPHandler, ThrottledDTPHandler), TLS_FTPHandler
    else:
        bases, control = (ThrottledDTPHandler,), FTPHandler

    class FaultyDTP(*bases):
        def __init__(self, sock, cmd_channel):
            f = faults.load()
            self.write_limit = int(f.get("throttle_bps") or 0)
            self._cut_at = int(f["cut_after_bytes"]) if faults.cut_pending() else 0
            super().__init__(sock, cmd_channel)

        def use_sendfile(self):
            # sendfile() would bypass send(), hence the throttle and the cut: only without them.
            if self.write_limit or self._cut_at or is_ssl_sock(self.socket):
                return False
            return DTPHandler.use_sendfile(self)

        def send(self, data):
            if self._cut_at and not self.receive:
                left = self._cut_at - self.tot_bytes_sent
                if left <= 0:
                    self._cut_at = 0
                    if faults.cut_pending():  # another transfer may have taken the cut
                        faults.consume_cut()
                        self.handle_close()  # drop the data connection; the server replies 426
                        return 0
                elif len(data) > left:
                    data = data[:left]  # stop exactly at the cut
            return super().send(data)

    authorizer = DummyAuthorizer()  # no anonymous user
    perm = "elradfmwMT" if args.writable else "elr"
    authorizer.add_user(args.user, os.environ["MOLSTREAM_DEV_FTP_PASSWORD"], args.root, perm=perm)
    handler = control
    if args.tls:
        cert, key = self_signed()
        handler.certfile, handler.keyfile = str(cert), str(key)
        handler.tls_control_required = handler.tls_data_required = True
    handler.auth_failed_timeout = 0.2  # pyftpdlib waits 3 s after a bad password
    handler.authorizer = authorizer
    handler.dtp_handler = FaultyDTP
    handler.passive_ports = None  # any free port; data sockets bind the control's 127.0.0.1
    handler.permit_foreign_addresses = False
    handler.banner = "molstream test FTP server"
    server = FTPServer(("127.0.0.1", args.port), handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # graceful: close every connection
    server.serve_forever(handle_exit=True)


if __name__ == "__main__":
    _serve(sys.argv[1:])
