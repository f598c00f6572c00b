"""An SFTP server (paramiko's own SSH server) serving one directory, in its own process.

    with SftpServer(root, user="molstream", password="pw", authorized_keys=[public_line],
                    cut_after_bytes=300_000) as sftp:
        sftp.url("a.csv")          # "sftp://127.0.0.1:PORT/a.csv" (the directory is "/")
        sftp.known_hosts           # "[127.0.0.1]:PORT ssh-ed25519 AAAA…": its host key
        sftp.cuts                  # connections dropped on purpose so far
        sftp.reads                 # each opened file's first read offset, in order

Logins: `password` (None: password logins refused) and `authorized_keys` (OpenSSH public key
lines; empty: key logins refused). The host key is made once per server (Ed25519) and kept in
its run directory, so a restart keeps it. `cut_after_bytes` drops the whole SSH connection once,
when a read reaches that offset of a file (set_faults() re-arms it), so a client must reconnect
and resume. `python -m molstream_dev.sftp ROOT --port P --state-dir D --user U` is the process.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from ._process import Managed, free_port

CONTROL = "faults.json"
HOST_KEY = "host_key"


def new_key(path: Path | None = None) -> tuple[str, str]:
    """A new Ed25519 key pair: (private key in OpenSSH format, public key line). Written to
    `path` (0600) and `path`.pub when given."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    if path is not None:
        path.touch(mode=0o600)
        path.write_text(private)
        path.with_name(path.name + ".pub").write_text(public + "\n")
    return private, public


class SftpServer(Managed):
    name = "sftp"
    host = "127.0.0.1"

    def __init__(self, root: Path, *, user: str = "molstream", password: str | None = "s3cret-sftp",
                 authorized_keys: list[str] | tuple[str, ...] = (), port: int | None = None,
                 cut_after_bytes: int = 0, data_dir: Path | None = None) -> None:
        super().__init__(data_dir)
        self.root, self.user, self.password = Path(root), user, password
        self.port = port or free_port()
        (self.dir / "authorized_keys").write_text("".join(f"{k}\n" for k in authorized_keys))
        if not (self.dir / HOST_KEY).exists():
            new_key(self.dir / HOST_KEY)
        self._generation = 0
        self.set_faults(cut_after_bytes=cut_after_bytes)

    def url(self, path: str = "", *, user: bool = False) -> str:
        who = f"{self.user}@" if user else ""
        return f"sftp://{who}{self.host}:{self.port}/{path.lstrip('/')}"

    @property
    def host_key(self) -> str:
        """The host key's public line: `ssh-ed25519 AAAA…`."""
        return (self.dir / f"{HOST_KEY}.pub").read_text().strip()

    @property
    def known_hosts(self) -> str:
        """The known_hosts line a client needs: `[127.0.0.1]:PORT ssh-ed25519 AAAA…`."""
        return f"[{self.host}]:{self.port} {self.host_key}"

    def set_faults(self, *, cut_after_bytes: int | None = None) -> None:
        """Change faults for the next reads; a cut is armed again (once)."""
        current = self.faults
        self._generation += 1
        faults = {"cut_after_bytes": (current["cut_after_bytes"] if cut_after_bytes is None
                                      else cut_after_bytes),
                  "generation": self._generation}
        tmp = self.dir / (CONTROL + ".tmp")
        tmp.write_text(json.dumps(faults))
        tmp.replace(self.dir / CONTROL)

    @property
    def faults(self) -> dict:
        try:
            return json.loads((self.dir / CONTROL).read_text())
        except FileNotFoundError:
            return {"cut_after_bytes": 0, "generation": 0}

    @property
    def cuts(self) -> int:
        return len(list(self.dir.glob("cut-*")))

    @property
    def reads(self) -> list[int]:
        """The first offset read from each file opened, in order."""
        try:
            text = (self.dir / "reads.log").read_text()
        except FileNotFoundError:
            return []
        return [int(line) for line in text.split()]

    @property
    def logins(self) -> list[str]:
        """How each accepted login authenticated: "password" or "publickey"."""
        try:
            return (self.dir / "logins.log").read_text().split()
        except FileNotFoundError:
            return []

    def command(self) -> list[str]:
        return [sys.executable, "-m", "molstream_dev.sftp", str(self.root), "--port",
                str(self.port), "--user", self.user, "--state-dir", str(self.dir)]

    def env(self) -> dict[str, str]:
        # The password goes through the environment: argv is visible to every user in `ps`.
        env = {**os.environ}
        env.pop("MOLSTREAM_DEV_SFTP_PASSWORD", None)
        if self.password is not None:
            env["MOLSTREAM_DEV_SFTP_PASSWORD"] = self.password
        return env


class _Faults:
    """Server side of the control file (as the FTP server's): the cut is consumed once."""

    def __init__(self, state: Path) -> None:
        self.state, self.lock = state, threading.Lock()
        done = [int(f.read_text() or 0) for f in state.glob("cut-*")]
        self.cut_generation = max(done, default=0)

    def cut_at(self) -> int:
        try:
            f = json.loads((self.state / CONTROL).read_text())
        except (OSError, ValueError):
            return 0
        if f.get("cut_after_bytes") and f.get("generation") != self.cut_generation:
            return int(f["cut_after_bytes"])
        return 0

    def consume(self) -> bool:
        with self.lock:
            try:
                f = json.loads((self.state / CONTROL).read_text())
            except (OSError, ValueError):
                return False
            if f.get("generation") == self.cut_generation:
                return False  # another connection took it
            self.cut_generation = f.get("generation")
            n = len(list(self.state.glob("cut-*"))) + 1
            (self.state / f"cut-{n}").write_text(str(self.cut_generation))
            return True


def _serve(argv: list[str]) -> None:
    import hmac

    import paramiko
    from paramiko.sftp import SFTP_FAILURE, SFTP_NO_SUCH_FILE, SFTP_OK, SFTP_PERMISSION_DENIED

    p = argparse.ArgumentParser()
    p.add_argument("root")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--state-dir", required=True)
    args = p.parse_args(argv)
    root = Path(args.root).resolve()
    state = Path(args.state_dir)
    password = os.environ.get("MOLSTREAM_DEV_SFTP_PASSWORD")
    authorized = {line.split()[1] for line in
                  (state / "authorized_keys").read_text().splitlines() if line.strip()}
    host_key = paramiko.Ed25519Key.from_private_key_file(str(state / HOST_KEY))
    faults = _Faults(state)
    log_lock = threading.Lock()

    def log(name: str, value: object) -> None:
        with log_lock, open(state / name, "a") as f:
            f.write(f"{value}\n")

    class Server(paramiko.ServerInterface):
        def get_allowed_auths(self, username):
            ways = (["publickey"] if authorized else []) + (["password"] if password else [])
            return ",".join(ways) or "none"

        def check_auth_password(self, username, given):
            if (password is not None and username == args.user
                    and hmac.compare_digest(given.encode(), password.encode())):
                log("logins.log", "password")
                return paramiko.AUTH_SUCCESSFUL
            return paramiko.AUTH_FAILED

        def check_auth_publickey(self, username, key):
            if username == args.user and key.get_base64() in authorized:
                log("logins.log", "publickey")
                return paramiko.AUTH_SUCCESSFUL
            return paramiko.AUTH_FAILED

        def check_channel_request(self, kind, chanid):
            return (paramiko.OPEN_SUCCEEDED if kind == "session"
                    else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED)

    def local(path: str) -> Path:
        """A client's path inside the served directory ("/" is the directory; relative paths
        start there too, as from a home directory)."""
        full = (root / path.lstrip("/")).resolve()
        if full != root and root not in full.parents:
            raise PermissionError(path)
        return full

    def status(e: OSError) -> int:
        return paramiko.SFTPServer.convert_errno(e.errno) if e.errno else SFTP_FAILURE

    class Handle(paramiko.SFTPHandle):
        def __init__(self, transport, flags=0):
            super().__init__(flags)
            self.transport, self.first = transport, None

        def read(self, offset, length):
            if self.first is None:
                self.first = offset
                log("reads.log", offset)
            cut = faults.cut_at()
            if cut and offset + length > cut and faults.consume():
                self.transport.close()  # the whole connection, as a network failure would
                return SFTP_FAILURE
            return super().read(offset, length)

    class Files(paramiko.SFTPServerInterface):
        transport: paramiko.Transport  # set per connection

        def canonicalize(self, path):
            return "/" + str(local(path).relative_to(root)).lstrip(".")

        def stat(self, path):
            try:
                return paramiko.SFTPAttributes.from_stat(os.stat(local(path)))
            except OSError as e:
                return status(e)

        lstat = stat

        def list_folder(self, path):
            try:
                d = local(path)
                return [paramiko.SFTPAttributes.from_stat(os.stat(d / n), n)
                        for n in os.listdir(d)]
            except OSError as e:
                return status(e)

        def open(self, path, flags, attr):
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC):
                return SFTP_PERMISSION_DENIED  # read-only
            try:
                f = open(local(path), "rb")  # noqa: SIM115 - the handle closes it
            except FileNotFoundError:
                return SFTP_NO_SUCH_FILE
            except OSError as e:
                return status(e)
            handle = Handle(self.transport, flags)
            handle.filename, handle.readfile = str(path), f
            return handle

        def session_ended(self):
            return SFTP_OK

    def connection(sock: socket.socket) -> None:
        transport = paramiko.Transport(sock)
        transport.add_server_key(host_key)

        files = type("ConnectionFiles", (Files,), {"transport": transport})
        transport.set_subsystem_handler("sftp", paramiko.SFTPServer, files)
        try:
            transport.start_server(server=Server())
        except (paramiko.SSHException, EOFError, OSError):
            transport.close()
            return
        while transport.is_active():
            transport.join(1)

    if os.environ.get("MOLSTREAM_DEV_SFTP_DEBUG"):
        paramiko.util.log_to_file("/dev/stderr", "DEBUG")
    else:
        paramiko.util.get_logger("paramiko").setLevel("CRITICAL")
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(16)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print(f"sftp server on 127.0.0.1:{args.port} serving {root}", flush=True)
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=connection, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    _serve(sys.argv[1:])
