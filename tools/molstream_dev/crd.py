"""The IngestRequest CRD as the chart renders it (charts/molstream/templates/crd.yaml), for
tests that need the CRD without installing the chart (the operator tests, the chart tests that
install several releases into one API server: the CRD is cluster-scoped and belongs to one
release, so they apply it once and install with crds.create=false)."""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from typing import Any

import yaml

from molstream_dev.kube import REPO_ROOT, find_binary

CHART = REPO_ROOT / "charts" / "molstream"
TEMPLATE = "templates/crd.yaml"
NAME = "ingestrequests.molstream.io"


@functools.cache
def crd_manifest() -> str:
    """The CRD's YAML, rendered by helm with the chart's default values."""
    helm = find_binary("helm")
    with tempfile.TemporaryDirectory(prefix="molstream-helm-") as home:
        env = {**os.environ, "HELM_CACHE_HOME": f"{home}/cache",
               "HELM_CONFIG_HOME": f"{home}/config", "HELM_DATA_HOME": f"{home}/data"}
        env.pop("KUBECONFIG", None)
        result = subprocess.run(
            [str(helm), "template", "molstream", str(CHART), "--show-only", TEMPLATE],
            capture_output=True, text=True, env=env, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"helm template --show-only {TEMPLATE} failed:\n{result.stderr}")
    return result.stdout


def crd() -> dict[str, Any]:
    """The CRD as an object."""
    return yaml.safe_load(crd_manifest())


def spec_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the IngestRequest's spec."""
    version = crd()["spec"]["versions"][0]
    return version["schema"]["openAPIV3Schema"]["properties"]["spec"]
