"""An FTP/FTPS server (pyftpdlib) serving one directory, in its own process.

Fault controls for the reliability tests: `throttle_bps` slows every download, and
`cut_after_bytes` drops the data connection once, mid-file, so that a client must resume
with REST. `python -m molstream_dev.ftp ROOT --port P ...` is the process it runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from ._process import Managed, free_port
from .certs import self_signed
from .kafka import _run_dir


class FtpServer(Managed):
    name = "ftp"

    def __init__(self, root: Path, *, user: str = "molstream", password: str = "s3cret-ftp",
                 tls: bool = False, port: int | None = None, throttle_bps: int = 0,
                 cut_after_bytes: int = 0) -> None:
        super().__init__()
        self.root, self.user, self.password, self.tls = Path(root), user, password, tls
        self.port = port or free_port()
        self.throttle_bps, self.cut_after_bytes = throttle_bps, cut_after_bytes
        self.dir = Path(tempfile.mkdtemp(prefix="ftp-", dir=_run_dir()))
        self.log = self.dir / "ftp.log"
        self.cert = self_signed()[0] if tls else None

    def url(self, path: str, *, with_credentials: bool = True) -> str:
        scheme = "ftps" if self.tls else "ftp"
        auth = f"{self.user}:{self.password}@" if with_credentials else ""
        return f"{scheme}://{auth}127.0.0.1:{self.port}/{path.lstrip('/')}"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "molstream_dev.ftp", str(self.root), "--port", str(self.port),
               "--user", self.user, "--password", self.password,
               "--throttle-bps", str(self.throttle_bps),
               "--cut-after-bytes", str(self.cut_after_bytes), "--state-dir", str(self.dir)]
        return cmd + (["--tls"] if self.tls else [])

    def port_to_wait(self) -> int:
        return self.port

    @property
    def cuts(self) -> int:
        """How many times the server dropped a data connection on purpose."""
        return len(list(self.dir.glob("cut-*")))


def _serve(argv: list[str]) -> None:
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import (
        DTPHandler,
        FTPHandler,
        ThrottledDTPHandler,
        TLS_DTPHandler,
        TLS_FTPHandler,
    )
    from pyftpdlib.servers import FTPServer

    p = argparse.ArgumentParser()
    p.add_argument("root")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--tls", action="store_true")
    p.add_argument("--throttle-bps", type=int, default=0)
    p.add_argument("--cut-after-bytes", type=int, default=0)
    p.add_argument("--state-dir", required=True)
    args = p.parse_args(argv)
    state = Path(args.state_dir)

    # Throttling is not offered over TLS (pyftpdlib has no throttled TLS data handler).
    base = TLS_DTPHandler if args.tls else ThrottledDTPHandler if args.throttle_bps else DTPHandler

    class FaultyDTP(base):
        def send(self, data):
            if args.cut_after_bytes and self.tot_bytes_sent >= args.cut_after_bytes \
                    and not (state / "cut-1").exists():
                (state / "cut-1").touch()
                self.handle_close()  # drop the data connection; the server replies 426
                return 0
            return super().send(data)

    if args.throttle_bps and not args.tls:
        FaultyDTP.write_limit = args.throttle_bps

    authorizer = DummyAuthorizer()
    authorizer.add_user(args.user, args.password, args.root, perm="elr")
    handler = TLS_FTPHandler if args.tls else FTPHandler
    if args.tls:
        cert, key = self_signed()
        handler.certfile, handler.keyfile = str(cert), str(key)
        handler.tls_control_required = handler.tls_data_required = True
    handler.authorizer = authorizer
    handler.dtp_handler = FaultyDTP
    if args.cut_after_bytes or args.throttle_bps:
        handler.use_sendfile = False  # sendfile() would bypass FaultyDTP.send
    handler.passive_ports = None  # any free port, loopback only
    handler.banner = "molstream test FTP server"
    server = FTPServer(("127.0.0.1", args.port), handler)
    server.serve_forever(handle_exit=True)


if __name__ == "__main__":
    _serve(sys.argv[1:])
