"""One active operator among replicas: leader election on a ``coordination.k8s.io/v1`` Lease.

client-go's semantics (tools/leaderelection): a candidate reads the Lease; it may write itself
in as ``holderIdentity`` when nobody holds it, when it holds it already (a renewal keeps
``acquireTime`` and ``leaseTransitions``), or when the record has not changed for
``leaseDurationSeconds`` as measured on the candidate's own monotonic clock from when it last
saw it change (never from ``renewTime``: no trust in other machines' clocks). Every write is a
PUT with the ``resourceVersion`` read, so of two candidates only one wins. The leader renews
every retry period; one that has not renewed for the renew deadline (shorter than the lease)
stops acting before anyone may take over (a watchdog thread keeps that deadline, whatever a
request does). Releasing writes an empty holder with a 1 s lease.

Stricter than client-go in one way: a leader that reads another holder in the Lease stops at
once instead of retrying until its deadline (someone took it over: a partition healed, a
person); it does not try to win it back.

Why not kopf's peering: peers of equal priority all pause (kopf 1.45) or all run (older ones),
it needs cluster-scoped KopfPeering objects, and it pauses kopf's handlers only, not the Kafka
consumer thread, with no fencing for a replica cut off from the API server.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, urlsplit

from .config import _seconds
from .kube import ApiError, Kube

__all__ = ["ElectionSettings", "LeaderElector", "Record", "next_spec", "release_spec"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ElectionSettings:
    """``MOLSTREAM_LEASE_NAME`` (unset: no election, the operator runs standalone), its
    namespace (``MOLSTREAM_LEASE_NAMESPACE``, else ``POD_NAMESPACE``), who we are (``POD_NAME``,
    else the host name and a random suffix) and client-go's three durations (defaults of the
    controller-manager: 15 s lease, 10 s renew deadline, 2 s retry period)."""

    name: str
    namespace: str
    identity: str
    lease_s: int = 15
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, fallback_namespace: str = ""
    ) -> ElectionSettings | None:
        env = os.environ if env is None else env
        name = env.get("MOLSTREAM_LEASE_NAME", "").strip()
        if not name:
            return None
        namespace = (env.get("MOLSTREAM_LEASE_NAMESPACE", "").strip()
                     or env.get("POD_NAMESPACE", "").strip() or fallback_namespace)
        if not namespace:
            raise ValueError("MOLSTREAM_LEASE_NAME is set but no namespace for the Lease: "
                             "set MOLSTREAM_LEASE_NAMESPACE or POD_NAMESPACE")
        identity = (env.get("POD_NAME", "").strip()
                    or f"{socket.gethostname()}-{secrets.token_hex(4)}")
        lease = _seconds(env, "MOLSTREAM_LEASE_DURATION_S", 15.0)
        renew = _seconds(env, "MOLSTREAM_LEASE_RENEW_DEADLINE_S", 10.0)
        retry = _seconds(env, "MOLSTREAM_LEASE_RETRY_PERIOD_S", 2.0)
        if not 0 < retry < renew < lease:
            raise ValueError(
                f"lease timings: need 0 < retry period ({retry:g}s) < renew deadline "
                f"({renew:g}s) < lease duration ({lease:g}s)")
        return cls(name=name, namespace=namespace, identity=identity,
                   lease_s=math.ceil(lease), renew_deadline_s=renew, retry_period_s=retry)

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"


# --- the record and the decisions (pure) ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Record:
    """A Lease's spec, as far as the election reads it."""

    holder: str = ""
    lease_s: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def of(cls, lease: Mapping[str, Any]) -> Record:
        spec = lease.get("spec") or {}
        return cls(
            holder=spec.get("holderIdentity") or "",
            lease_s=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )


def micro_time(ts: float) -> str:
    """A MicroTime as the API server writes it (RFC 3339, microseconds, UTC)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def expired(record: Record | None, seen_at: float, now: float) -> bool:
    """Whether a candidate may take the Lease over: nobody holds it, or its record has not
    changed for its own ``leaseDurationSeconds`` since ``seen_at`` (monotonic, ours)."""
    return record is None or not record.holder or now >= seen_at + record.lease_s


def next_spec(current: Record | None, *, identity: str, lease_s: int, now: str,
              expired: bool) -> dict[str, Any] | None:
    """The spec ``identity`` writes to acquire or renew the Lease; None while another holder's
    lease runs. A renewal keeps acquireTime and leaseTransitions; a new holder counts one more
    transition (also after a release, as client-go does)."""
    spec = {"holderIdentity": identity, "leaseDurationSeconds": lease_s,
            "acquireTime": now, "renewTime": now, "leaseTransitions": 0}
    if current is None:
        return spec
    if current.holder == identity:
        spec["acquireTime"] = current.acquire_time or now
        spec["leaseTransitions"] = current.transitions
        return spec
    if not expired:
        return None
    spec["leaseTransitions"] = current.transitions + 1
    return spec


def release_spec(current: Record, *, now: str) -> dict[str, Any]:
    """What a leader writes when it steps down: no holder, a 1 s lease (client-go's release)."""
    return {"holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": now,
            "renewTime": now, "leaseTransitions": current.transitions}


# --- the elector ------------------------------------------------------------------------------


class LeaseLost(Exception):
    """The Lease names another holder (or none) while we lead."""


class LeaderElector:
    def __init__(self, settings: ElectionSettings, kube: Kube) -> None:
        self.settings = settings
        self._kube = kube
        self._path = (f"/apis/coordination.k8s.io/v1/namespaces/"
                      f"{quote(settings.namespace, safe='')}/leases")
        self._seen: Record | None = None
        self._seen_at = 0.0
        self.leader = False
        self._renewed_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def holder(self) -> str:
        return self._seen.holder if self._seen else ""

    def health(self) -> dict[str, Any]:
        return {"leader": self.leader, "identity": self.settings.identity,
                "holder": self.holder, "lease": self.settings.where}

    # --- one round --------------------------------------------------------------------------

    def _timeout(self, budget: float) -> tuple[float, float]:
        budget = max(0.5, budget)
        return (min(5.0, budget), budget)

    def _see(self, record: Record) -> None:
        if record != self._seen:
            self._seen, self._seen_at = record, time.monotonic()

    def try_acquire_or_renew(self, budget: float = 10.0) -> bool:
        """One read and at most one write; True when we hold the Lease afterwards. Raises
        LeaseLost when we were the leader and the Lease names someone else, ApiError when the
        API server fails (the caller retries)."""
        started = time.monotonic()
        timeout = self._timeout(budget)
        s = self.settings
        url = f"{self._path}/{quote(s.name, safe='')}"
        try:
            lease: dict[str, Any] | None = self._kube.request("GET", url, timeout=timeout)
        except ApiError as exc:
            if exc.status != 404:
                raise
            lease = None
        now = micro_time(time.time())
        if lease is None:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": s.name, "namespace": s.namespace},
                    "spec": next_spec(None, identity=s.identity, lease_s=s.lease_s, now=now,
                                      expired=True)}
            written = self._write("POST", self._path, body, timeout)
        else:
            record = Record.of(lease)
            self._see(record)
            if self.leader and record.holder != s.identity:
                raise LeaseLost(f"the Lease {s.where} names {record.holder or 'no holder'} now")
            spec = next_spec(record, identity=s.identity, lease_s=s.lease_s, now=now,
                             expired=expired(self._seen, self._seen_at, time.monotonic()))
            if spec is None:
                return False
            written = self._write("PUT", url, {**lease, "spec": spec}, timeout)
        if written is None:  # another candidate wrote first: read again next round
            return False
        self._see(Record.of(written))
        if not self.leader:
            logger.info("Acquired the Lease %s as %s", s.where, s.identity)
        self.leader, self._renewed_at = True, started
        return True

    def _write(self, method: str, path: str, body: dict[str, Any],
               timeout: tuple[float, float]) -> dict[str, Any] | None:
        try:
            return self._kube.request(method, path, body=body, timeout=timeout)
        except ApiError as exc:
            if exc.status == 409:  # created or updated by someone else since our read
                return None
            raise

    # --- standby: wait for the Lease ---------------------------------------------------------

    def acquire(self, stop: threading.Event) -> bool:
        """Block until we hold the Lease (True) or ``stop`` is set (False). A refusal of the
        API server (403: the Role lacks the lease rules) is raised: it will not heal."""
        s = self.settings
        logger.info("Standby: waiting for the Lease %s as %s", s.where, s.identity)
        told = None
        while not stop.is_set():
            try:
                if self.try_acquire_or_renew():
                    return True
            except ApiError as exc:
                if exc.status in (401, 403):
                    raise
                logger.warning("Lease %s not read or written: %s", s.where, exc)
            if self.holder and self.holder != told:
                told = self.holder
                logger.info("Standby: the Lease %s is held by %s", s.where, told)
            stop.wait(s.retry_period_s * random.uniform(1.0, 1.2))  # client-go's jitter
        return False

    # --- leader: keep it, or stop acting --------------------------------------------------------

    def keep(self, on_lost: Callable[[str], None]) -> None:
        """Renew in a thread every retry period; call ``on_lost`` (which must stop us acting)
        when another holder appears or no renewal went through for the renew deadline. A
        watchdog thread keeps that deadline even while a request hangs (the client's pool
        retries a timed-out GET or PUT on its own)."""
        lost = threading.Lock()

        def once(reason: str) -> None:
            if lost.acquire(blocking=False):
                self.leader = False
                on_lost(reason)

        self._thread = threading.Thread(target=self._renew, args=(once,),
                                        name="molstream-lease", daemon=True)
        self._thread.start()
        threading.Thread(target=self._watchdog, args=(once,), name="molstream-lease-watchdog",
                         daemon=True).start()

    def _renew(self, lost: Callable[[str], None]) -> None:
        s = self.settings
        while not self._stop.wait(s.retry_period_s):
            try:
                self.try_acquire_or_renew(budget=max(self._left(), 0.5))
            except LeaseLost as exc:
                lost(str(exc))
                return
            except ApiError as exc:
                logger.warning("Lease %s not renewed (%.1fs left): %s",
                               s.where, self._left(), exc)

    def _watchdog(self, lost: Callable[[str], None]) -> None:
        while not self._stop.wait(max(self._left(), 0.0)):
            if self._left() <= 0:
                lost(f"the Lease {self.settings.where} was not renewed for "
                     f"{self.settings.renew_deadline_s:g}s")
                return

    def _left(self) -> float:
        return self._renewed_at + self.settings.renew_deadline_s - time.monotonic()

    def release(self) -> None:
        """Stop renewing and, if the Lease still names us, hand it over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if not self.leader:
            return
        self.leader = False
        s = self.settings
        url = f"{self._path}/{quote(s.name, safe='')}"
        try:
            lease = self._kube.request("GET", url, timeout=(2.0, 5.0))
            record = Record.of(lease)
            if record.holder != s.identity:
                return
            body = {**lease, "spec": release_spec(record, now=micro_time(time.time()))}
            self._kube.request("PUT", url, body=body, timeout=(2.0, 5.0))
            logger.info("Released the Lease %s", s.where)
        except ApiError as exc:  # it expires by itself
            logger.warning("Lease %s not released (%s); it expires in %ds",
                           s.where, exc, s.lease_s)


# --- the standby's health endpoint -----------------------------------------------------------


class StandbyHealth:
    """The liveness URL served while standing by (kopf serves it once we lead): a standby is
    alive and ready, its body says who leads."""

    def __init__(self, url: str, elector: LeaderElector) -> None:
        parts = urlsplit(url)
        path = parts.path or "/"

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                found = self.path.split("?")[0] == path
                body = json.dumps({"leadership": elector.health()} if found else {}).encode()
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:  # probes are not news
                pass

        self._server = ThreadingHTTPServer((parts.hostname or "0.0.0.0", parts.port or 80),
                                           Handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="molstream-standby-health", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
