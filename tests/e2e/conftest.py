"""The end-to-end suite: a real kind cluster on the machine's Docker engine, created by the
same `make cluster` users run, from the offline node image `make e2e-node` builds
(tools/provision/e2e). Skipped unless MOLSTREAM_E2E=1 (`make e2e` sets it): it needs root,
Docker and minutes of building that the other suites do not."""

from __future__ import annotations

import os
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

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True
                ) -> subprocess.CompletedProcess:
        return subprocess.run([KUBECTL, "--context", self.context, *args], input=stdin,
                              text=True, capture_output=True, check=check, timeout=600)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A fresh cluster for the session, made by `make cluster` with the offline node image;
    deleted afterwards (with its docker network)."""
    name = f"molstream-e2e-{uuid.uuid4().hex[:6]}"
    image = os.environ.get("KIND_NODE_IMAGE", "")
    made = subprocess.run(
        ["make", "--no-print-directory", "cluster", f"CLUSTER_NAME={name}",
         f"KIND_NODE_IMAGE={image}", f"KAFKA_UI_PORT={_free_port()}"],
        cwd=REPO, text=True, capture_output=True, timeout=900)
    try:
        assert made.returncode == 0, f"make cluster failed:\n{made.stdout}\n{made.stderr}"
        yield Cluster(name)
    finally:
        subprocess.run([KIND, "delete", "cluster", "--name", name], capture_output=True,
                       timeout=300)
