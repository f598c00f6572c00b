"""Helpers of the operator tests: the operator process, a namespace seen by an admin, manifests."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kafka import KafkaProducer
from molstream_operator.kube import Kube
from molstream_operator.status import format_time

ROOT = Path(__file__).resolve().parents[2]
RBAC_RULES = ROOT / "operator" / "rbac-rules.yaml"
IMAGE = "registry.test/molstream:test"
ALLOWED_HOSTS = "molstream-ftp,*.example.org"

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    *,
    what: str,
    timeout: float = 30.0,
    interval: float = 0.2,
    context: Callable[[], str] | None = None,
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` and context."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"\n{context()}" if context else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}{extra}", pytrace=False)
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    """``python -m molstream_operator`` in a subprocess, its output in a file."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        log: Path,
        liveness: str,
        metrics_port: int | None = None,
    ) -> None:
        self.argv, self.env, self.log_path, self.liveness = argv, env, log, liveness
        self.metrics_port = metrics_port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
            )
        wait_for(
            self.healthy, what="the operator's liveness endpoint", timeout=60, context=self.tail
        )
        return self

    def healthy(self) -> dict[str, Any] | None:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"the operator exited with {self.process.returncode}\n{self.tail()}")
        try:
            with urllib.request.urlopen(self.liveness, timeout=2) as response:
                return json.loads(response.read() or b"{}") or {"ok": True}
        except OSError:
            return None

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of the operator's /metrics: (name, sorted labels) -> value."""
        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "--- operator log (tail)\n" + "\n".join(self.log().splitlines()[-lines:])


class Namespace:
    """The test's namespace, seen by an admin: IngestRequests, Jobs, Events, Job status."""

    def __init__(self, name: str, admin: Kube, kubectl: Any) -> None:
        self.name, self.admin, self.kubectl = name, admin, kubectl
        self.context: Callable[[], str] = lambda: ""

    def apply(self, manifest: dict[str, Any] | list[dict[str, Any]]) -> None:
        docs = manifest if isinstance(manifest, list) else [manifest]
        self.kubectl("apply", "-f", "-", namespace=self.name, input=yaml.safe_dump_all(docs))

    def ir(self, name: str) -> dict[str, Any]:
        body = self.admin.get_ingestrequest(self.name, name)
        assert body is not None, f"IngestRequest {name} is gone"
        return body

    def run_ingest_id(self, name: str, run: int) -> str:
        """The ingest id the operator gives run `run` of this IngestRequest object."""
        return f"{self.name}.{name}.{run}-{self.ir(name)['metadata']['uid'][:8]}"

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.ir(name).get("status") or {})

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        for cond in self.status(name).get("conditions") or []:
            if cond["type"] == kind:
                return cond
        return {}

    def wait_status(
        self, name: str, predicate: Callable[[dict[str, Any]], bool], what: str, timeout: float = 30
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            status = self.status(name)
            return status if predicate(status) else None

        return wait_for(
            check,
            what=f"{name}: {what}",
            timeout=timeout,
            context=lambda: (
                f"--- status\n{json.dumps(self.status(name), indent=1)}\n{self.context()}"
            ),
        )

    def wait_phase(self, name: str, phase: str, timeout: float = 30) -> dict[str, Any]:
        return self.wait_status(name, lambda s: s.get("phase") == phase, f"phase {phase}", timeout)

    def jobs(self) -> list[dict[str, Any]]:
        path = f"/apis/batch/v1/namespaces/{self.name}/jobs"
        return self.admin.request("GET", path)["items"]

    def cronjobs(self) -> list[dict[str, Any]]:
        path = f"/apis/batch/v1/namespaces/{self.name}/cronjobs"
        return self.admin.request("GET", path)["items"]

    def wait_jobs(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        def enough() -> list[dict[str, Any]] | None:
            jobs = self.jobs()
            return jobs if len(jobs) >= count else None

        return wait_for(
            enough,
            what=f"{count} Job(s)",
            timeout=timeout,
            context=self.context,
        )

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        items = self.admin.request("GET", f"/api/v1/namespaces/{self.name}/events")["items"]
        return [e for e in items if name is None or e["involvedObject"]["name"] == name]

    def job_status(self, job: str, state: str) -> None:
        """Play the Job controller: ``state`` is active, complete, failed or deadline."""
        current = self.admin.get_job(self.name, job)
        assert current is not None, f"Job {job} not found"
        now = format_time(time.time())
        started = (current.get("status") or {}).get("startTime") or now

        def cond(kind: str, reason: str = "", message: str = "") -> dict[str, str]:
            return {
                "type": kind,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastProbeTime": now,
                "lastTransitionTime": now,
            }

        if state == "active":
            status: dict[str, Any] = {"active": 1, "startTime": started}
        elif state == "complete":
            status = {
                "active": 0,
                "succeeded": 1,
                "startTime": started,
                "completionTime": now,
                "conditions": [
                    cond("SuccessCriteriaMet", "CompletionsReached"),
                    cond("Complete", "CompletionsReached"),
                ],
            }
        else:
            reason, message = {
                "failed": ("BackoffLimitExceeded", "Job has reached the specified backoff limit"),
                "deadline": ("DeadlineExceeded", "Job was active longer than specified deadline"),
            }[state]
            status = {
                "active": 0,
                "failed": 3,
                "startTime": started,
                "conditions": [
                    cond("FailureTarget", reason, message),
                    cond("Failed", reason, message),
                ],
            }
        self.admin.request(
            "PATCH",
            f"/apis/batch/v1/namespaces/{self.name}/jobs/{job}/status",
            body={"status": status},
            content_type="application/merge-patch+json",
        )


def ingestrequest(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "url": "ftp://molstream-ftp:2121/activities.csv.gz",
        "credentialsSecret": {"name": "molstream-ftp-credentials"},
        # plain ftp:// with a password: allowed here and by the test operator's
        # MOLSTREAM_ALLOW_INSECURE_CREDENTIALS (test_credentials_policy.py proves the refusals)
        "allowInsecureCredentials": True,
    }
    body.update(spec)
    return {
        "apiVersion": "molstream.io/v1alpha1",
        "kind": "IngestRequest",
        "metadata": {"name": name},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


def secret(password: str, name: str = "molstream-ftp-credentials") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        # the opt-in label of a Secret meant as source credentials
        "metadata": {"name": name, "labels": {"molstream.io/source-credentials": "true"}},
        "type": "Opaque",
        "stringData": {"username": "molstream", "password": password},
    }


class Publisher:
    """Publish pipeline events the way the fetcher and the worker do (key = ingest id)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")

    def raw(self, key: bytes | None, value: bytes) -> None:
        self.producer.send(self.topic, key=key, value=value).get(timeout=30)

    def __call__(
        self, kind: str, ingest_id: str, *, ts: float | None = None, **fields: Any
    ) -> None:
        event = {"type": kind, "ingest_id": ingest_id, "ts": ts or time.time(), **fields}
        self.raw(ingest_id.encode(), json.dumps(event).encode())

    def close(self) -> None:
        self.producer.close(timeout=10)
