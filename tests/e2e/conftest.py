"""The end-to-end suite: a real kind cluster on the machine's Docker engine, created by the
same `make cluster` users run, from the offline node image `make e2e-node` builds
(tools/provision/e2e). Skipped unless MOLSTREAM_E2E=1 (`make e2e` sets it): it needs root,
Docker and minutes of building that the other suites do not."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KUBECTL = str(REPO / ".cache/bin/kubectl")
KIND = str(REPO / ".cache/bin/kind")


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


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A fresh cluster for the session, made by `make cluster` from the offline node image;
    deleted afterwards (with its docker network)."""
    cluster = Cluster(f"molstream-e2e-{uuid.uuid4().hex[:6]}")
    try:
        made = cluster.make("cluster", timeout_s=900)
        assert made.returncode == 0, f"make cluster failed:\n{made.stdout}\n{made.stderr}"
        yield cluster
    finally:
        subprocess.run([KIND, "delete", "cluster", "--name", cluster.name],
                       capture_output=True, timeout=300)
