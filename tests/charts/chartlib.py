"""Plain helpers of the chart tests: paths, tool lookup, rendered-object access."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from molstream_dev.kube import CACHE_BIN, REPO_ROOT, find_binary

CHART = REPO_ROOT / "charts" / "molstream"
KIND_VALUES = REPO_ROOT / "k8s" / "kind-values.yaml"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
CACHE = CACHE_BIN.parent
# `helm install` into the tests' shared API server: the CRD is there already (fixture ir_crd),
# owned by no release, and cluster-scoped, so no release takes it.
INSTALL_ARGS = ("--set", "crds.create=false")

Helm = Callable[..., subprocess.CompletedProcess[str]]
Render = Callable[..., list[dict[str, Any]]]


def tool(name: str, *, hint: str) -> Path:
    """A command from the venv, `.cache/` or PATH; fail the test with `hint` when missing."""
    for candidate in (Path(sys.executable).parent / name, CACHE_BIN / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    try:
        return find_binary(name)
    except RuntimeError:
        pytest.fail(f"{name} not found: {hint}", pytrace=False)


def set_args(values: dict[str, Any] | None) -> list[str]:
    return [arg for key, value in (values or {}).items() for arg in ("--set", f"{key}={value}")]


def refused(helm: Helm, values: dict[str, Any]) -> str:
    """The error output of `helm template` with `values`, which the chart must refuse."""
    result = helm("template", "molstream", CHART, *set_args(values), check=False)
    assert result.returncode != 0
    return result.stderr


def parse(manifests: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(manifests) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    names = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)
    raise AssertionError(f"{kind}/{name} not rendered; got {names}")


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    kind = obj["kind"]
    if kind == "Pod":
        return obj["spec"]
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        return obj["spec"]["template"]["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """name → value (or the valueFrom mapping) of a container's environment."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def operator_built_job(objects: list[dict[str, Any]], tmp_path: Path, spec: dict[str, Any], *,
                       namespace: str = "molstream") -> dict[str, Any]:
    """The fetcher Job the operator would build for an IngestRequest ``spec`` from the rendered
    chart's operator environment and fetcher template file."""
    from molstream_operator.config import OperatorConfig
    from molstream_operator.manifests import build_job
    from molstream_operator.models import IngestRequestRef, IngestRequestSpec

    operator = next(o for o in objects if o["kind"] == "Deployment"
                    and o["metadata"]["name"].endswith("operator"))
    # Without the operator's own Kafka security (files of its Pod, read by from_env): a
    # fetcher Job takes its Kafka settings from the template, never from the operator's.
    env = {k: v for k, v in env_of(pod_spec(operator)["containers"][0]).items()
           if isinstance(v, str) and not (k.startswith("MOLSTREAM_KAFKA_")
                                          and k != "MOLSTREAM_KAFKA_BOOTSTRAP")}
    template = next(o for o in objects if o["kind"] == "ConfigMap"
                    and o["metadata"]["name"].endswith("fetcher-template"))
    path = tmp_path / "fetcher-template.yaml"
    path.write_text(template["data"]["fetcher-template.yaml"])
    env["MOLSTREAM_FETCHER_TEMPLATE"] = str(path)
    ref = IngestRequestRef(namespace=namespace, name="sample", uid="u", generation=1)
    return build_job(ref, IngestRequestSpec.parse(spec), OperatorConfig.from_env(env), run=1)


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions) selects `labels`."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, values = expr["key"], expr.get("values", [])
        present = key in labels
        ok = {
            "In": present and labels[key] in values,
            "NotIn": not present or labels[key] not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[expr["operator"]]
        if not ok:
            return False
    return True
