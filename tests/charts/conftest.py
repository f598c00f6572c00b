"""Fixtures of the chart tests: helm without a cluster, and the chart rendered by it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from chartlib import CHART, Helm, Render, parse, set_args, tool
from molstream_dev.crd import crd_manifest
from molstream_dev.kube import PROVISION_HINT


@pytest.fixture(scope="session")
def helm_offline(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm without a cluster (lint, template), with its homes in a temp dir."""
    binary = tool("helm", hint=PROVISION_HINT)
    home = tmp_path_factory.mktemp("helm-offline")
    env = dict(os.environ)
    env.pop("KUBECONFIG", None)
    env.update(
        HELM_CACHE_HOME=str(home / "cache"),
        HELM_CONFIG_HOME=str(home / "config"),
        HELM_DATA_HOME=str(home / "data"),
    )

    def run(*args: str | os.PathLike[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(binary), *map(os.fspath, args)]
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        if check and result.returncode != 0:
            message = f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
            pytest.fail(message, pytrace=False)
        return result

    return run


@pytest.fixture(scope="session")
def render(helm_offline: Helm) -> Render:
    """`render(values_files=[...], set={...})`: the chart's objects (tests hooks included)."""

    def run(
        values_files: Iterable[Path] = (),
        set: dict[str, Any] | None = None,  # noqa: A002 - helm's own word
        release: str = "molstream",
        namespace: str = "molstream",
    ) -> list[dict[str, Any]]:
        files = [arg for path in values_files for arg in ("--values", path)]
        result = helm_offline(
            "template", release, CHART, "--namespace", namespace, *files, *set_args(set)
        )
        return parse(result.stdout)

    return run


@pytest.fixture(scope="session")
def ir_crd(kubectl: Any) -> str:
    """The chart's CRD, applied once for every release the tests install into the shared API
    server: cluster-scoped, it belongs to one release (crds.create), so they all install with
    crds.create=false (INSTALL_ARGS). tests/charts/test_chart_upgrade.py installs it through
    helm, in an API server of its own."""
    manifest = crd_manifest()
    kubectl("apply", "-f", "-", input=manifest)
    kubectl("wait", "--for=condition=Established", "crd/ingestrequests.molstream.io",
            "--timeout=60s")
    return manifest
