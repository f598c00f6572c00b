"""The chart against a real kube-apiserver (RBAC authorization, its default admission plugins:
ValidatingAdmissionPolicy and PodSecurity included), installed into a namespace that enforces
Pod Security "restricted":

- the ValidatingAdmissionPolicy refuses an IngestRequest naming a Secret its author (a user
  bound only to the chart's editor role, by impersonation) may not `get`, and admits it once
  that user may; changing the spec of someone else's IngestRequest is checked the same way,
  a metadata change is not; the binding covers the release's namespace only;
- every Pod the chart makes, and the fetcher Pod the operator builds from the chart's
  template, is admitted by PodSecurity "restricted" (Pods are enforced; Deployments would only
  warn, so each Pod template is created as a Pod, server-side dry run), and nothing the chart
  installs draws a PodSecurity warning.

No controller-manager runs: Deployments get no Pods and hooks are not executed, so `helm
install` runs with --no-hooks and the hook objects (topics Job, helm test Pod) are created
separately."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chartlib import CHART, INSTALL_ARGS, KIND_VALUES, operator_built_job, parse, pod_spec
from molstream_dev.pytest_kube import Tool

RELEASE = "molstream"
USER = "alice"
_KIND_ORDER = {"ServiceAccount": 0, "Secret": 0, "ConfigMap": 0}


def _namespace(kubectl: Tool, prefix: str, **labels: str) -> str:
    name = f"{prefix}-{secrets.token_hex(3)}"
    kubectl("create", "namespace", name)
    if labels:
        kubectl("label", "namespace", name, *(f"{k}={v}" for k, v in labels.items()))
    return name


@pytest.fixture(scope="module")
def restricted(
    helm: Tool, kubectl: Tool, ir_crd: str
) -> Iterator[tuple[str, list[dict[str, Any]], str]]:
    """The chart with the kind values and metrics on, installed as release `molstream` into a
    namespace enforcing Pod Security "restricted"; (namespace, objects, helm's stderr)."""
    namespace = _namespace(
        kubectl,
        "restricted",
        **{
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
            "pod-security.kubernetes.io/warn": "restricted",
        },
    )
    # No controller-manager: the ServiceAccount it would make, which Pods without one use.
    kubectl("create", "serviceaccount", "default", namespace=namespace)
    installed = helm(
        "install",
        RELEASE,
        CHART,
        "--namespace",
        namespace,
        "--no-hooks",
        *INSTALL_ARGS,
        "--values",
        KIND_VALUES,
        "--set",
        "metrics.enabled=true",
        timeout=180,
    )
    manifest = parse(helm("get", "manifest", RELEASE, "--namespace", namespace).stdout)
    hooks = parse(helm("get", "hooks", RELEASE, "--namespace", namespace).stdout)
    hooks.sort(key=lambda o: _KIND_ORDER.get(o["kind"], 1))
    created = kubectl("create", "-f", "-", namespace=namespace, input=yaml.safe_dump_all(hooks))
    yield namespace, manifest + hooks, installed.stderr + created.stderr
    helm("uninstall", RELEASE, "--namespace", namespace, check=False)
    kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _ingestrequest(name: str, secret: str | None, url: str = "https://example.org/a.csv") -> str:
    spec: dict[str, Any] = {"url": url}
    if secret:
        spec["credentialsSecret"] = {"name": secret}
    body = {
        "apiVersion": "molstream.io/v1alpha1",
        "kind": "IngestRequest",
        "metadata": {"name": name},
        "spec": spec,
    }
    return yaml.safe_dump(body)


def _as_user(kubectl: Tool, namespace: str, *args: str, input: str | None = None) -> Any:
    return kubectl(*args, f"--as={USER}", namespace=namespace, input=input, check=False)


def _refused_once_active(kubectl: Tool, namespace: str, body: str) -> Any:
    """A server-side dry run as the user, repeated while the API server has not loaded the
    new policy yet (it does so asynchronously, within seconds of its creation)."""
    deadline = time.monotonic() + 60
    while True:
        result = _as_user(
            kubectl, namespace, "create", "--dry-run=server", "-f", "-", input=body
        )
        if result.returncode != 0 or time.monotonic() > deadline:
            return result
        time.sleep(1)


@pytest.fixture(scope="module")
def editor(
    kubectl: Tool, restricted: tuple[str, list[dict[str, Any]], str]
) -> tuple[str, str]:
    """The user bound (in the release's namespace) only to the chart's editor ClusterRole,
    and a Secret of that namespace; (namespace, editor role name)."""
    namespace, objects, _ = restricted
    (role,) = [
        o["metadata"]["name"]
        for o in objects
        if o["kind"] == "ClusterRole" and o["metadata"]["name"].endswith("ingestrequest-editor")
    ]
    assert role == f"molstream-{namespace}-ingestrequest-editor"  # the namespace in the name
    kubectl("create", "rolebinding", "alice-editor", f"--clusterrole={role}", f"--user={USER}",
            namespace=namespace)  # fmt: skip
    kubectl("create", "secret", "generic", "db-app", "--from-literal=username=app",
            "--from-literal=password=s3cret", namespace=namespace)  # fmt: skip
    can = _as_user(kubectl, namespace, "auth", "can-i", "get", "secret/db-app")
    assert can.stdout.strip() == "no"
    can = _as_user(kubectl, namespace, "auth", "can-i", "create", "ingestrequests.molstream.io")
    assert can.stdout.strip() == "yes"
    return namespace, role


def test_an_editor_cannot_name_a_secret_it_may_not_read(kubectl: Tool, editor: Any) -> None:
    namespace, _ = editor
    refused = _refused_once_active(kubectl, namespace, _ingestrequest("steal", "db-app"))
    assert refused.returncode != 0
    assert 'may not get Secret "db-app"' in refused.stderr, refused.stderr
    assert f"{USER} may not get" in refused.stderr
    assert "ValidatingAdmissionPolicy" in refused.stderr
    # Without credentials, the same user creates IngestRequests as before.
    plain = _as_user(kubectl, namespace, "create", "-f", "-", input=_ingestrequest("plain", None))
    assert plain.returncode == 0, plain.stderr


def test_an_editor_allowed_to_read_the_secret_may_name_it(kubectl: Tool, editor: Any) -> None:
    namespace, _ = editor
    _refused_once_active(kubectl, namespace, _ingestrequest("probe", "db-app"))
    kubectl("create", "role", "read-db-app", "--verb=get", "--resource=secrets",
            "--resource-name=db-app", namespace=namespace)  # fmt: skip
    kubectl("create", "rolebinding", "alice-read-db-app", "--role=read-db-app",
            f"--user={USER}", namespace=namespace)  # fmt: skip
    try:
        created = _as_user(
            kubectl, namespace, "create", "-f", "-", input=_ingestrequest("mine", "db-app")
        )
        assert created.returncode == 0, created.stderr
    finally:
        kubectl("delete", "rolebinding", "alice-read-db-app", namespace=namespace)


def test_changing_the_spec_of_another_s_ingestrequest_is_checked(
    kubectl: Tool, editor: Any
) -> None:
    """An administrator's IngestRequest names a Secret the editor cannot read: the editor may
    not point it elsewhere (the Secret would go to their URL), but metadata changes (kopf's
    finalizers and annotations, a rerun) pass."""
    namespace, _ = editor
    _refused_once_active(kubectl, namespace, _ingestrequest("probe", "db-app"))
    kubectl("create", "-f", "-", namespace=namespace, input=_ingestrequest("theirs", "db-app"))
    patch = json.dumps({"spec": {"url": "https://attacker.example/x.csv"}})
    moved = _as_user(
        kubectl, namespace, "patch", "ingestrequest", "theirs", "--type=merge", "-p", patch
    )
    assert moved.returncode != 0
    assert 'may not get Secret "db-app"' in moved.stderr, moved.stderr
    labelled = _as_user(kubectl, namespace, "label", "ingestrequest", "theirs", "team=a")
    assert labelled.returncode == 0, labelled.stderr
    annotated = _as_user(
        kubectl, namespace, "annotate", "ingestrequest", "theirs", "molstream.io/rerun=1"
    )
    assert annotated.returncode == 0, annotated.stderr


def test_the_binding_covers_the_release_s_namespace_only(kubectl: Tool, editor: Any) -> None:
    namespace, role = editor
    _refused_once_active(kubectl, namespace, _ingestrequest("probe", "db-app"))
    elsewhere = _namespace(kubectl, "no-release")
    try:
        kubectl("create", "rolebinding", "alice-editor", f"--clusterrole={role}",
                f"--user={USER}", namespace=elsewhere)  # fmt: skip
        result = _as_user(
            kubectl, elsewhere, "create", "--dry-run=server", "-f", "-",
            input=_ingestrequest("x", "anything"),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    finally:
        kubectl("delete", "namespace", elsewhere, "--wait=false", check=False)


def _as_pod(obj: dict[str, Any], name: str) -> dict[str, Any]:
    spec = pod_spec(obj)
    assert spec is not None
    template = obj["spec"]["template"] if obj["kind"] != "Pod" else obj
    if obj["kind"] == "CronJob":
        template = obj["spec"]["jobTemplate"]["spec"]["template"]
    labels = template.get("metadata", {}).get("labels", {})
    # A StatefulSet's claims become volumes of its Pods (as the controller would name them).
    claims = obj["spec"].get("volumeClaimTemplates", []) if obj["kind"] == "StatefulSet" else []
    spec = {
        **spec,
        "volumes": [
            *spec.get("volumes", []),
            *(
                {
                    "name": c["metadata"]["name"],
                    "persistentVolumeClaim": {
                        "claimName": f"{c['metadata']['name']}-{obj['metadata']['name']}-0"
                    },
                }
                for c in claims
            ),
        ],
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }


def _fetcher_pod(objects: list[dict[str, Any]], tmp_path: Path) -> dict[str, Any]:
    """The fetcher Pod the operator would create from the chart's environment and template."""
    return operator_built_job(
        objects, tmp_path,
        {"url": "https://example.org/a.csv", "credentialsSecret": {"name": "db-app"}},
        namespace="x")


def test_every_pod_is_admitted_by_pod_security_restricted(
    kubectl: Tool, restricted: Any, tmp_path: Path
) -> None:
    namespace, objects, output = restricted
    # Nothing the chart installs draws a PodSecurity warning (Deployments, StatefulSets, Jobs).
    assert "violate PodSecurity" not in output, output
    # The helm test Pod was created for real above; every Pod template as a Pod too.
    pods = [o for o in objects if pod_spec(o) is not None and o["kind"] != "Pod"]
    assert {o["kind"] for o in pods} == {"Deployment", "StatefulSet", "Job"}
    bodies = [_as_pod(o, f"{o['kind'].lower()}-{o['metadata']['name']}") for o in pods]
    bodies.append(_as_pod(_fetcher_pod(objects, tmp_path), "fetcher"))
    for body in bodies:
        result = kubectl(
            "create", "--dry-run=server", "-f", "-", namespace=namespace, input=json.dumps(body),
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"{body['metadata']['name']}: {result.stderr}"
    # The namespace does enforce: a Pod without the hardening is refused.
    loose = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "loose"},
        "spec": {"containers": [{"name": "c", "image": "molstream:0.1.0"}]},
    }
    result = kubectl(
        "create", "--dry-run=server", "-f", "-", namespace=namespace, input=json.dumps(loose),
        check=False,
    )  # fmt: skip
    assert result.returncode != 0 and "violates PodSecurity" in result.stderr, result.stderr
