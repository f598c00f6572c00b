"""What every local service shares: free loopback ports, waiting for them, a managed process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache"


def free_port() -> int:
    with socket.socket() as s:
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
            time.sleep(0.1)
    raise ServiceError(f"{what} did not open port {port} within {timeout_s:.0f}s", log)


class ServiceError(RuntimeError):
    def __init__(self, message: str, log: Path | None = None) -> None:
        tail = ""
        if log is not None and log.exists():
            tail = "\n--- last lines of " + str(log) + " ---\n" + "\n".join(
                log.read_text(errors="replace").splitlines()[-30:])
        super().__init__(message + tail)


def require(binary: str, script: str) -> str:
    from shutil import which

    found = which(binary)
    if not found:
        raise ServiceError(f"{binary} is not installed: run `bash {script}` first")
    return found


class Managed:
    """A service run as a child process on a fixed port, restartable on the same port/data."""

    name = "service"
    stop_signal = signal.SIGTERM

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.log: Path | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def port_to_wait(self) -> int:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def ready(self) -> None:
        """Extra readiness check after the port opens."""

    def start(self, *, timeout_s: float = 60) -> Managed:
        if self.running:
            return self
        assert self.log is not None
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")
        self.process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                        env=self.env(), start_new_session=True)
        out.close()
        wait_for_port(self.port_to_wait(), timeout_s=timeout_s, process=self.process,
                      log=self.log, what=self.name)
        self.ready()
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, *, timeout_s: float = 30) -> None:
        """Graceful stop (SIGTERM), SIGKILL if it takes too long."""
        if not self.running:
            return
        assert self.process is not None
        os.killpg(self.process.pid, self.stop_signal)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
