"""The Kubernetes test environment itself: a real API server that stores and validates objects."""

from __future__ import annotations

import json

from molstream_dev.pytest_kube import Tool


def test_apiserver_answers(kubectl: Tool) -> None:
    version = json.loads(kubectl("version", "--output=json").stdout)
    assert version["serverVersion"]["major"] == "1"
    ready = kubectl("get", "--raw", "/readyz").stdout
    assert ready.strip() == "ok"


def test_namespace_fixture_stores_objects(kubectl: Tool, kube_namespace: str) -> None:
    kubectl("create", "configmap", "probe", "--from-literal=answer=42", namespace=kube_namespace)
    stored = json.loads(
        kubectl("get", "configmap", "probe", "--output=json", namespace=kube_namespace).stdout
    )
    assert stored["data"] == {"answer": "42"}


def test_api_server_validates(kubectl: Tool, kube_namespace: str) -> None:
    bad = '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_A_DNS_Name"}}'
    result = kubectl("apply", "-f", "-", input=bad, namespace=kube_namespace, check=False)
    assert result.returncode != 0
    assert "metadata.name" in result.stderr
