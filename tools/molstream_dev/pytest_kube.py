"""pytest plugin: a real kube-apiserver + etcd, and kubectl/helm bound to it.

Fixtures:

- `kube_apiserver` (session): a `KubeAPIServer` handle with `.kubeconfig` (path) and `.url`.
  With MOLSTREAM_TEST_KUBECONFIG set, the server that kubeconfig names is used instead of
  starting one (e.g. a kind cluster).
- `kubectl` / `helm` (session): `kubectl("get", "ns", namespace=..., input=..., check=...)`
  runs the binary against that server and returns the `subprocess.CompletedProcess` (text).
  With `check=True` (the default) a non-zero exit raises `ToolError`, whose message carries
  the command, its stdout and stderr.
- `kube_namespace` (function): the name of a fresh namespace for the test, deleted after it.

No controller-manager runs: objects are stored and validated, never reconciled (a Job stays a
stored object, a deleted namespace stays Terminating). Tests that use these fixtures get the
`kube` marker (and `helm` for the helm fixture) automatically. A missing binary fails the test
with a message saying to run tools/provision/kube.sh.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from molstream_dev.kube import KubeAPIServer, MissingBinaryError, find_binary


class ToolError(subprocess.CalledProcessError):
    """A kubectl/helm command failed; str() shows its output, unlike CalledProcessError."""

    def __str__(self) -> str:
        return (
            f"{' '.join(map(str, self.cmd))} exited with {self.returncode}\n"
            f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )


class Tool(Protocol):
    def __call__(
        self,
        *args: str | os.PathLike[str],
        namespace: str | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]: ...


def _binary(name: str) -> Path:
    try:
        return find_binary(name)
    except MissingBinaryError as error:
        pytest.fail(str(error), pytrace=False)


def _runner(binary: Path, env: dict[str, str]) -> Tool:
    def run(
        *args: str | os.PathLike[str],
        namespace: str | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(binary), *(os.fspath(a) for a in args)]
        if namespace is not None:
            argv += ["--namespace", namespace]
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, env=env, timeout=timeout
        )
        if check and result.returncode != 0:
            raise ToolError(result.returncode, argv, result.stdout, result.stderr)
        return result

    return run


@pytest.fixture(scope="session")
def kube_apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeAPIServer]:
    existing = os.environ.get("MOLSTREAM_TEST_KUBECONFIG")
    if existing:
        yield KubeAPIServer.existing(existing)
        return
    try:
        server = KubeAPIServer.start(tmp_path_factory.mktemp("kube"))
    except MissingBinaryError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kube_env(
    kube_apiserver: KubeAPIServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Environment for kubectl/helm: the test kubeconfig, and helm's homes in a temp dir."""
    home = tmp_path_factory.mktemp("helm-home")
    env = dict(os.environ)
    env.update(
        KUBECONFIG=str(kube_apiserver.kubeconfig),
        HELM_CACHE_HOME=str(home / "cache"),
        HELM_CONFIG_HOME=str(home / "config"),
        HELM_DATA_HOME=str(home / "data"),
    )
    return env


@pytest.fixture(scope="session")
def kubectl(kube_env: dict[str, str]) -> Tool:
    return _runner(_binary("kubectl"), kube_env)


@pytest.fixture(scope="session")
def helm(kube_env: dict[str, str]) -> Tool:
    return _runner(_binary("helm"), kube_env)


@pytest.fixture
def kube_namespace(request: pytest.FixtureRequest, kubectl: Tool) -> Iterator[str]:
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")
    name = f"{base[:50].rstrip('-')}-{secrets.token_hex(3)}"
    kubectl("create", "namespace", name)
    yield name
    # Nothing finalizes a namespace without a controller-manager: don't wait for it to go.
    kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "kube_apiserver" in fixtures or "kube_env" in fixtures:
            item.add_marker(pytest.mark.kube)
        if "helm" in fixtures:
            item.add_marker(pytest.mark.helm)
