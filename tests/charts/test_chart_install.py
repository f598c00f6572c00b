"""The chart against a real kube-apiserver + etcd: `helm install` is accepted object by object,
the CRD becomes Established, the sample IngestRequest passes a server-side dry run, invalid ones
are refused with a message naming the field, and the operator's Role grants what it needs and
nothing more (checked by the API server's own authorizer).

No controller-manager runs: Deployments get no Pods and hooks are not executed, so `helm
install` runs with --no-hooks and the hook objects (topics Job, helm test Pod) are created
separately, which the API server validates the same way."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from chartlib import CHART, CI_VALUES, INSTALL_ARGS, KIND_VALUES, parse
from molstream_dev.kube import REPO_ROOT
from molstream_dev.pytest_kube import Tool

SAMPLE = REPO_ROOT / "k8s" / "ingestrequest.yaml"
CRD = "customresourcedefinition.apiextensions.k8s.io/ingestrequests.molstream.io"
# Objects helm installs from templates/ (cluster-scoped ClusterRoles included).
_KIND_ORDER = {"ServiceAccount": 0, "Secret": 0, "ConfigMap": 0}


def _namespace(kubectl: Tool, prefix: str) -> str:
    name = f"{prefix}-{secrets.token_hex(3)}"
    kubectl("create", "namespace", name)
    return name


def _install(
    helm: Tool, kubectl: Tool, release: str, namespace: str, *args: Any
) -> list[dict[str, Any]]:
    helm("install", release, CHART, "--namespace", namespace, "--no-hooks", *INSTALL_ARGS, *args,
         timeout=180)
    manifest = parse(helm("get", "manifest", release, "--namespace", namespace).stdout)
    hooks = parse(helm("get", "hooks", release, "--namespace", namespace).stdout)
    # Hooks, created for real (a dry run would not see the ServiceAccount the Pod needs).
    hooks.sort(key=lambda o: _KIND_ORDER.get(o["kind"], 1))
    kubectl("create", "-f", "-", namespace=namespace, input=yaml.safe_dump_all(hooks))
    return manifest + hooks


@pytest.fixture(scope="module")
def installed(
    helm: Tool, kubectl: Tool, ir_crd: str
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The chart installed with the kind values as release `molstream` (the sample's host)."""
    namespace = _namespace(kubectl, "chart")
    objects = _install(helm, kubectl, "molstream", namespace, "--values", KIND_VALUES)
    yield namespace, objects
    helm("uninstall", "molstream", "--namespace", namespace, check=False)
    kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _assert_stored(kubectl: Tool, namespace: str, objects: list[dict[str, Any]]) -> None:
    missing = []
    for obj in objects:
        ref = f"{obj['kind']}/{obj['metadata']['name']}"
        result = kubectl("get", ref, "--output=name", namespace=namespace, check=False)
        if result.returncode != 0:
            missing.append(f"{ref}: {result.stderr.strip()}")
    assert not missing, "\n".join(missing)


def test_install_accepts_every_object(kubectl: Tool, installed: Any) -> None:
    namespace, objects = installed
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "StatefulSet", "Job", "Pod", "Role", "RoleBinding"} <= kinds
    _assert_stored(kubectl, namespace, objects)


def test_crd_established(kubectl: Tool, installed: Any) -> None:
    kubectl("wait", "--for=condition=Established", CRD, "--timeout=60s")
    names = kubectl("get", CRD, "--output=jsonpath={.spec.names.shortNames}").stdout
    assert "ir" in names


def test_sample_ingestrequest_dry_run(kubectl: Tool, installed: Any) -> None:
    namespace, objects = installed
    result = kubectl("apply", "--dry-run=server", "-f", SAMPLE, namespace=namespace)
    assert "ingestrequest.molstream.io/ingestrequest-sample created (server dry run)" in (
        result.stdout
    )
    # The sample's host is the demo FTP Service of a release named molstream.
    sample = next(d for d in yaml.safe_load_all(SAMPLE.read_text()) if d["kind"] == "IngestRequest")
    host = sample["spec"]["url"].split("/")[2].split(":")[0]
    assert any(o["kind"] == "Service" and o["metadata"]["name"] == host for o in objects)


def _ingestrequest(spec: dict[str, Any]) -> str:
    body = {
        "apiVersion": "molstream.io/v1alpha1",
        "kind": "IngestRequest",
        "metadata": {"name": "bad"},
        "spec": spec,
    }
    return yaml.safe_dump(body)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "spec.url: Required value"),
        ({"url": "file:///etc/passwd"}, 'spec.url: Invalid value: "file:///etc/passwd"'),
        ({"url": "gopher://example.org/x.csv"}, "spec.url: Invalid value"),
    ],
    ids=["no-url", "file-scheme", "gopher-scheme"],
)
def test_invalid_ingestrequest_refused(
    kubectl: Tool, installed: Any, spec: dict[str, Any], message: str
) -> None:
    namespace, _ = installed
    result = kubectl(
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        input=_ingestrequest(spec),
        namespace=namespace,
        check=False,
    )
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    ("verb", "resource", "allowed"),
    [
        ("watch", "ingestrequests.molstream.io", True),
        ("patch", "ingestrequests.molstream.io/status", True),
        ("create", "jobs.batch", True),
        ("create", "cronjobs.batch", True),
        ("create", "events", True),
        # A credentialsSecret's opt-in label (molstream.io/source-credentials), by name only.
        ("get", "secrets", True),
        ("list", "secrets", False),
        ("watch", "secrets", False),
        ("delete", "ingestrequests.molstream.io", False),
        ("create", "pods", False),
        ("create", "deployments.apps", False),
        ("create", "rolebindings.rbac.authorization.k8s.io", False),
    ],
)
def test_operator_rbac(
    kubectl: Tool, installed: Any, verb: str, resource: str, allowed: bool
) -> None:
    namespace, _ = installed
    account = f"system:serviceaccount:{namespace}:molstream-operator"
    result = kubectl(
        "auth", "can-i", verb, resource, f"--as={account}", namespace=namespace, check=False
    )
    assert result.stdout.strip() == ("yes" if allowed else "no"), result.stderr
    # Nothing outside its namespace.
    elsewhere = kubectl(
        "auth", "can-i", verb, resource, f"--as={account}", namespace="default", check=False
    )
    assert elsewhere.stdout.strip() == "no"


@pytest.mark.parametrize("account", ["molstream-worker", "molstream-fetcher"])
def test_workloads_have_no_api_rights(kubectl: Tool, installed: Any, account: str) -> None:
    namespace, _ = installed
    who = f"--as=system:serviceaccount:{namespace}:{account}"
    result = kubectl("auth", "can-i", "--list", who, namespace=namespace)
    rules = [
        line for line in result.stdout.splitlines()[1:] if "molstream.io" in line or "batch" in line
    ]
    assert rules == []


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_install_ci_value_sets(helm: Tool, kubectl: Tool, installed: Any, values: Any) -> None:
    """The non-default sets install too (beside the first release, crds.create=false)."""
    namespace = _namespace(kubectl, values.stem[:20])
    try:
        objects = _install(helm, kubectl, f"ms-{values.stem[:20]}", namespace, "--values", values)
        _assert_stored(kubectl, namespace, objects)
    finally:
        helm("uninstall", f"ms-{values.stem[:20]}", "--namespace", namespace, check=False)
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_upgrade_sqlite_to_three_workers_refused(helm: Tool, installed: Any) -> None:
    namespace, _ = installed
    result = helm(
        "upgrade",
        "molstream",
        CHART,
        "--namespace",
        namespace,
        "--no-hooks",
        "--reuse-values",
        "--set",
        "worker.replicas=3",
        check=False,
    )
    assert result.returncode != 0
    assert "worker.replicas=3 needs PostgreSQL" in result.stderr
