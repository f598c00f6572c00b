"""The end-to-end suite: a real kind cluster on the machine's Docker engine, created by the
same `make cluster` users run, from the offline node image `make e2e-node` builds
(tools/provision/e2e). Skipped unless MOLSTREAM_E2E=1 (`make e2e` sets it): it needs root,
Docker and minutes of building that the other suites do not."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
if str(_INTEGRATION) not in sys.path:  # expected.py: what a CSV file implies for the tables
    sys.path.insert(0, str(_INTEGRATION))

REPO = Path(__file__).resolve().parents[2]
KUBECTL = str(REPO / ".cache/bin/kubectl")
KIND = str(REPO / ".cache/bin/kind")
NAMESPACE = "molstream"  # .env


def pytest_collection_modifyitems(config, items):
    if os.environ.get("MOLSTREAM_E2E") == "1":
        return
    skip = pytest.mark.skip(reason="a kind cluster on Docker: run `make e2e` (MOLSTREAM_E2E=1)")
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, name: str) -> None:
        self.name = name
        self.context = f"kind-{name}"
        self.ui_port = _free_port()

    def make(self, *targets: str, timeout_s: float = 1800) -> subprocess.CompletedProcess:
        """`make TARGETS` on this cluster, with what `make e2e` passes (E2E_MAKE_ARGS: the
        node image, the stand-in images and their values file)."""
        return subprocess.run(
            # (KUBE_CONTEXT too: `make e2e` exports its own, derived from .env's name)
            ["make", "--no-print-directory", *targets, f"CLUSTER_NAME={self.name}",
             f"KUBE_CONTEXT={self.context}", f"KAFKA_UI_PORT={self.ui_port}",
             *shlex.split(os.environ.get("E2E_MAKE_ARGS", ""))],
            cwd=REPO, text=True, capture_output=True, timeout=timeout_s)

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True
                ) -> subprocess.CompletedProcess:
        return subprocess.run([KUBECTL, "--context", self.context, *args], input=stdin,
                              text=True, capture_output=True, check=check, timeout=600)

    def k(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        """kubectl in the release's namespace."""
        return self.kubectl("--namespace", NAMESPACE, *args, **kwargs)

    def json(self, *args: str) -> dict:
        """`kubectl get ARGS -o json` in the release's namespace."""
        return json.loads(self.k("get", *args, "-o", "json").stdout)

    def ir_status(self, name: str) -> dict:
        return self.json("ir", name).get("status", {})

    def exec_bytes(self, target: str, *command: str) -> bytes:
        """What `kubectl exec TARGET -- COMMAND` writes to stdout, as bytes (a file, a dump)."""
        return subprocess.run([KUBECTL, "--context", self.context, "--namespace", NAMESPACE,
                               "exec", target, "--", *command],
                              capture_output=True, check=True, timeout=600).stdout

    def read_file(self, target: str, path: str) -> bytes:
        return self.exec_bytes(target, "cat", path)

    @staticmethod
    def wait_for(predicate: Callable[[], object], what: str, timeout_s: float = 900):
        """Poll until `predicate()` is truthy (an event in the cluster) and return it; fail
        naming `what` after `timeout_s`, which only bounds a hang."""
        deadline = time.monotonic() + timeout_s
        while not (value := predicate()):
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(1)
        return value


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A fresh cluster for the session, made by `make cluster` from the offline node image and
    removed by `make clean` afterwards (which the teardown checks: no node container left).
    E2E_CLUSTER=NAME names it and keeps it afterwards, to look into (a cluster of that name
    left by an earlier session is deleted first: the tests expect a fresh database; unless
    E2E_REUSE=1)."""
    kept = os.environ.get("E2E_CLUSTER")
    cluster = Cluster(kept or f"molstream-e2e-{uuid.uuid4().hex[:6]}")
    # E2E_REUSE=1 with E2E_CLUSTER: go on with that cluster as it is (to rerun one test while
    # working on it; the suite as a whole expects a fresh one).
    if kept and os.environ.get("E2E_REUSE") != "1":
        subprocess.run([KIND, "delete", "cluster", "--name", kept], capture_output=True,
                       check=True, timeout=300)
    try:
        made = cluster.make("cluster", timeout_s=900)
        assert made.returncode == 0, f"make cluster failed:\n{made.stdout}\n{made.stderr}"
        yield cluster
    finally:
        if not kept:
            _clean(cluster)


def _clean(cluster: Cluster) -> None:
    """`make clean`, the README's way out: the release uninstalled, the cluster deleted."""
    cleaned = cluster.make("clean", timeout_s=600)
    clusters = subprocess.run([KIND, "get", "clusters"], capture_output=True, text=True).stdout
    nodes = subprocess.run(["docker", "ps", "-aq", "--filter",
                            f"label=io.x-k8s.kind.cluster={cluster.name}"],
                           capture_output=True, text=True).stdout.split()
    if cluster.name in clusters.split() or nodes:
        subprocess.run([KIND, "delete", "cluster", "--name", cluster.name],
                       capture_output=True, timeout=300)
        pytest.fail(f"`make clean` left the cluster {cluster.name} (nodes {nodes}):\n"
                    f"{cleaned.stdout}\n{cleaned.stderr}")


@pytest.fixture(scope="session")
def ran(cluster: Cluster) -> subprocess.CompletedProcess:
    """`make run` once; the tests use the release and the sample it leaves."""
    return cluster.make("run")
