"""The worker's health: GET /healthz (liveness) and GET /readyz (readiness) on
MOLSTREAM_HEALTH_PORT (8080; 0: off), served like the metrics (molstream.metrics).

Liveness fails (503, one line saying why) when the consume loop has not turned for
MOLSTREAM_LIVENESS_TIMEOUT_S (default 300), or when one database operation has been running
for longer than that. The loop keeps turning while an apply runs (molstream.polling), so the
loop alone would never tell a wedged worker; one operation is the unit because a long apply
that progresses is many of them (a batch, a transaction of batches, an index rebuilt), while
a database that never answers, or a lock nobody releases, holds one forever. A transient
error ends its operation and the retry is a new one: a database that is down, or busy,
keeps the worker alive, logging each retry (a restart would not bring it back). So does
Kafka being unreachable: each retry of a commit or poll is a turn, and MOLSTREAM_KAFKA_OUTAGE_S
(not this limit) ends the worker, with its own line and exit status 2. Before the loop starts
(the schema checked, the group joined) the worker is alive.

Readiness (200) once the database was reached and the consumer has joined its group, with or
without partitions: a worker that got none (more workers than partitions) is a standby that
takes partitions over in the next rebalance. Counting it unready would make a
PodDisruptionBudget see a disruption that is not one and block every eviction.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from wsgiref.simple_server import make_server

from .metrics import _Quiet, _ThreadingServer

log = logging.getLogger(__name__)


class Health:
    def __init__(self, liveness_timeout_s: float) -> None:
        self.limit = liveness_timeout_s
        self._lock = threading.Lock()
        self._turned: float | None = None  # the consume loop's last turn; None: not started
        self._busy: dict[int, tuple[str, float]] = {}  # thread → (operation, since)
        self.database_reached = False
        self.joined = False

    def turned(self) -> None:
        self._turned = time.monotonic()

    @contextlib.contextmanager
    def operation(self, what: str) -> Iterator[None]:
        """One database operation (one attempt: a retry is another)."""
        me = threading.get_ident()
        with self._lock:
            outer = self._busy.get(me)
            if outer is None:  # the outermost one is what may hang
                self._busy[me] = (what, time.monotonic())
        try:
            yield
        finally:
            if outer is None:
                with self._lock:
                    self._busy.pop(me, None)

    def liveness(self) -> str | None:
        """Why the worker is not alive, or None."""
        now = time.monotonic()
        if self._turned is not None and now - self._turned > self.limit:
            return (f"the consume loop has not turned for {now - self._turned:.0f} s "
                    f"(MOLSTREAM_LIVENESS_TIMEOUT_S={self.limit:g})")
        longest = self.longest_operation()
        if longest is not None and longest[1] > self.limit:
            return (f"one database operation ({longest[0]}) has run for {longest[1]:.0f} s "
                    f"(MOLSTREAM_LIVENESS_TIMEOUT_S={self.limit:g})")
        return None

    def longest_operation(self) -> tuple[str, float] | None:
        """The database operation running longest, and for how many seconds; None if none."""
        now = time.monotonic()
        with self._lock:
            busy = list(self._busy.values())
        if not busy:
            return None
        what, since = min(busy, key=lambda b: b[1])
        return what, now - since

    def readiness(self) -> str | None:
        """Why the worker is not ready, or None."""
        if not self.database_reached:
            return "the database has not been reached yet"
        if not self.joined:
            return "the consumer has not joined its group yet"
        return None

    def app(self, environ, start_response):
        checks = {"/healthz": self.liveness, "/readyz": self.readiness}
        check = checks.get(environ.get("PATH_INFO", ""))
        if check is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: /healthz or /readyz\n"]
        reason = check()
        status = "200 OK" if reason is None else "503 Service Unavailable"
        start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
        return [f"{reason or 'ok'}\n".encode()]


class HealthServer:
    """`health.app` on `host:port` (port 0: any free one), in a daemon thread."""

    def __init__(self, health: Health, port: int, host: str) -> None:
        self._server = make_server(host, port, health.app, server_class=_ThreadingServer,
                                   handler_class=_Quiet)
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True, name="health").start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve(health: Health, port: int) -> HealthServer | None:
    """Serve `health` on `port` (0: off), on every interface (a pod's) or on
    MOLSTREAM_HEALTH_HOST's."""
    if not port:
        return None
    host = os.environ.get("MOLSTREAM_HEALTH_HOST") or "0.0.0.0"  # noqa: S104 - a pod's
    server = HealthServer(health, port, host)
    log.info("health on http://%s:%d/healthz and /readyz", host, server.port)
    return server
