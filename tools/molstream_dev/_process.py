"""What every local service shares: free loopback ports, waiting for them, a managed process,
and per-service run directories under .cache/run/."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache"
PROVISION = "tools/provision/services.sh"
_OWNER = ".owner-pid"


def run_dir() -> Path:
    d = Path(os.environ.get("MOLSTREAM_DEV_RUN_DIR", CACHE / "run"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def new_run_dir(prefix: str) -> Path:
    """A fresh directory for one service; it records which process owns it so that `prune`
    can tell leftovers of dead sessions from directories in use."""
    d = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=run_dir()))
    (d / _OWNER).write_text(str(os.getpid()))
    return d


def _cmdlines() -> list[str]:
    out = []
    for proc in Path("/proc").iterdir():
        try:
            out.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode() + " ")
        except (OSError, ValueError):
            continue
    return out


def prune_run_dirs(*, min_age_s: float = 600) -> list[Path]:
    """Remove run directories left by dead sessions: the owner process is gone and no running
    process names the directory on its command line (older ones, without an owner file, must
    also be untouched for `min_age_s`)."""
    removed, cmdlines = [], _cmdlines()
    for d in run_dir().iterdir():
        if not d.is_dir() or any(f"{d}/" in c or f"{d} " in c for c in cmdlines):
            continue
        owner = d / _OWNER
        try:
            if owner.exists():
                os.kill(int(owner.read_text()), 0)
                continue  # its owner is alive
            if time.time() - d.stat().st_mtime < min_age_s:
                continue
        except (ProcessLookupError, ValueError):
            pass
        except (PermissionError, FileNotFoundError):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port() -> int:
    """A free loopback port *below* the ephemeral range: while a service is stopped for a fault
    test, the kernel never hands its port to an outgoing connection, so restart can rebind it."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randint(min(15000, low - 1000), low - 1)
        if port_is_free(port):
            return port
    with socket.socket() as s:  # fall back on the kernel's choice
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, *, timeout_s: float, process: subprocess.Popen | None = None,
                  log: Path | None = None, what: str = "service") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServiceError(f"{what} exited with status {process.returncode}", log)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceError(f"{what} did not open port {port} within {timeout_s:.0f}s", log)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class ServiceError(RuntimeError):
    """A service could not start; the message ends with the tail of its log."""

    def __init__(self, message: str, log: Path | None = None, *, lines: int = 40) -> None:
        tail = ""
        if log is not None and log.exists():
            text = log.read_text(errors="replace").splitlines()
            tail = f"\n--- last lines of {log} ---\n" + "\n".join(text[-lines:])
        super().__init__(message + tail)


def require(binary: str, script: str = PROVISION) -> str:
    found = shutil.which(binary)
    if not found:
        raise ServiceError(f"{binary} is not installed: run `sudo bash {script}` first")
    return found


class Managed:
    """A service run as a child process (its own process group) on a fixed port, restartable
    on the same port and data dir. Subclasses set `port`, `dir`, `log` and `command()`."""

    name = "service"
    stop_signal = signal.SIGTERM
    start_timeout_s = 60.0

    def __init__(self, data_dir: Path | None = None) -> None:
        self.process: subprocess.Popen | None = None
        self.owns_dir = data_dir is None  # only a dir we made is removed by close()
        self.dir = Path(data_dir) if data_dir else new_run_dir(self.name)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = self.dir / f"{self.name}.log"
        self.port = 0
        self.startup_s: float | None = None  # how long the last start() took

    # --- what subclasses provide
    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def popen_options(self) -> dict:
        """Extra subprocess.Popen arguments (e.g. the user to run as)."""
        return {}

    def ports(self) -> list[int]:
        """Every port the service binds (checked free before each launch)."""
        return [self.port]

    def prepare(self) -> None:
        """Runs before each launch (write config, format storage, …)."""

    def ready(self) -> None:
        """Extra readiness check after the port opens."""

    # --- lifecycle
    def start(self, *, timeout_s: float | None = None):
        if self.running:
            return self
        t0 = time.monotonic()
        for port in self.ports():
            # A process killed a moment ago may still hold its socket while the kernel
            # tears it down: give that a few seconds.
            deadline = time.monotonic() + 10
            while not port_is_free(port):
                if time.monotonic() > deadline:
                    raise ServiceError(f"{self.name}: port {port} is taken by another process")
                time.sleep(0.1)
        self.prepare()
        with open(self.log, "ab") as out:
            out.write(f"\n=== {self.name} start {time.strftime('%H:%M:%S')} ===\n".encode())
            out.flush()
            self.process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=self.env(),
                                            start_new_session=True, **self.popen_options())
        try:
            wait_for_port(self.port, timeout_s=timeout_s or self.start_timeout_s,
                          process=self.process, log=self.log, what=self.name)
            self.ready()
        except BaseException:
            self.kill()
            raise
        self.startup_s = time.monotonic() - t0
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.process.pid, sig)  # the whole group: wrappers and their children
        except ProcessLookupError:
            pass

    def stop(self, *, timeout_s: float = 30) -> None:
        """Graceful stop; SIGKILL if it takes longer than `timeout_s`. Data is kept."""
        if not self.running:
            return
        self._signal(self.stop_signal)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL to the service and every process it started (PostgreSQL's children leave
        the process group), as a crash would. Data is kept; start() again recovers from it."""
        if self.process is not None and self.process.poll() is None:
            family = _descendants(self.process.pid)
            self._signal(signal.SIGKILL)
            for pid in family:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.process.wait()

    def restart(self):
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop, and remove the run directory if this handle created it."""
        self.stop()
        if self.owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def remove(self) -> None:
        """Stop and remove the run directory, even one given to the constructor."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} 127.0.0.1:{self.port} {state} dir={self.dir}>"
