"""Strimzi's and KEDA's own CRDs (tests/data/crds/), installed into the tests' API server so that
it validates the KafkaTopics, KafkaUsers and ScaledObjects the chart renders against their
projects' schemas; and the server-side dry run that asks it."""

from __future__ import annotations

from typing import Any

import yaml
from molstream_dev.kube import REPO_ROOT
from molstream_dev.pytest_kube import Tool

CRDS = REPO_ROOT / "tests" / "data" / "crds"
NAMES = ("kafkatopics.kafka.strimzi.io", "kafkausers.kafka.strimzi.io", "scaledobjects.keda.sh")


def install(kubectl: Tool) -> None:
    """Apply the CRDs (idempotent) and wait until the API server serves them."""
    for path in sorted(CRDS.glob("*.yaml")):
        kubectl("apply", "--server-side", "--force-conflicts", "-f", path)
    for name in NAMES:
        kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")


def dry_run(kubectl: Tool, namespace: str, obj: dict[str, Any]) -> Any:
    """`kubectl create --dry-run=server` of one object in `namespace` (whatever namespace it
    was rendered for): the CompletedProcess, not checked."""
    obj = {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "namespace"}}
    return kubectl("create", "--dry-run=server", "-f", "-", namespace=namespace,
                   input=yaml.safe_dump(obj), check=False)
