"""The chart's availability parts: the worker's probes (its /healthz and /readyz), the worker's
update strategy per database, topologySpreadConstraints, and the PodDisruptionBudgets, rendered
and then against a real kube-apiserver: the budgets are accepted, and the API server's eviction
(what `kubectl drain` calls) keeps to the worker's budget and lets a Pod that is not Ready go.

No controller-manager runs in the test API server: the test plays the disruption controller (it
writes the budget's status) and the kubelet (the Pods' Running/Ready status), as the operator
tests play the Job controller."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from chartlib import (
    CHART,
    INSTALL_ARGS,
    Helm,
    Render,
    env_of,
    find,
    parse,
    pod_spec,
    refused,
    selects,
    set_args,
)
from molstream_dev.pytest_kube import Tool

POSTGRES = {"database.existingSecret": "pg", "kafka.topics.rowsPartitions": 4,
            "worker.replicas": 2}
SPREAD = {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
          "whenUnsatisfiable": "ScheduleAnyway"}


def _worker(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return find(objects, "Deployment", "molstream-worker")


def _budgets(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "PodDisruptionBudget"}


def _labels(deployment: dict[str, Any]) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"]["labels"]


def test_the_worker_is_probed_on_its_health_port(render: Render) -> None:
    worker = _worker(render())
    (container,) = pod_spec(worker)["containers"]
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    env = env_of(container)
    assert (env["MOLSTREAM_HEALTH_PORT"], env["MOLSTREAM_LIVENESS_TIMEOUT_S"]) == ("8080", "300")
    probes = {kind: container[f"{kind}Probe"] for kind in ("startup", "liveness", "readiness")}
    assert {k: p["httpGet"] for k, p in probes.items()} == {
        "startup": {"path": "/healthz", "port": "health"},
        "liveness": {"path": "/healthz", "port": "health"},
        "readiness": {"path": "/readyz", "port": "health"},
    }
    # Start-up may take minutes before liveness judges; the worker itself says when it is stuck.
    startup = probes["startup"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    # The checkov findings about missing probes are no longer kept.
    annotations = " ".join(worker["metadata"]["annotations"].values())
    assert "CKV_K8S_8" not in annotations and "CKV_K8S_9" not in annotations


def test_probe_timings_are_values(render: Render) -> None:
    worker = _worker(render(set={"worker.probes.liveness.periodSeconds": 60,
                                 "worker.probes.stuckAfterSeconds": 900}))
    (container,) = pod_spec(worker)["containers"]
    assert container["livenessProbe"]["periodSeconds"] == 60
    assert env_of(container)["MOLSTREAM_LIVENESS_TIMEOUT_S"] == "900"


def test_health_port_zero_means_no_probes(render: Render) -> None:
    worker = _worker(render(set={"worker.healthPort": 0}))
    (container,) = pod_spec(worker)["containers"]
    assert "ports" not in container
    assert not {"startupProbe", "livenessProbe", "readinessProbe"} & set(container)
    assert env_of(container)["MOLSTREAM_HEALTH_PORT"] == "0"
    assert "CKV_K8S_8" in " ".join(worker["metadata"]["annotations"].values())
    with_metrics = _worker(render(set={"worker.healthPort": 0, "metrics.enabled": True}))
    (container,) = pod_spec(with_metrics)["containers"]
    assert [p["name"] for p in container["ports"]] == ["metrics"]


def test_the_worker_s_network_policy_still_admits_nothing(render: Render) -> None:
    """The kubelet probes from the Pod's node, which NetworkPolicies always admit: the health
    port is not opened to the cluster."""
    policy = find(render(), "NetworkPolicy", "molstream-worker-deny-ingress")
    assert policy["spec"]["policyTypes"] == ["Ingress"] and "ingress" not in policy["spec"]


def test_sqlite_keeps_recreate_and_no_budget(render: Render) -> None:
    objects = render()
    assert _worker(objects)["spec"]["strategy"] == {"type": "Recreate"}
    assert _budgets(objects) == {}


def test_postgres_rolls_one_worker_at_a_time_without_surge(render: Render) -> None:
    worker = _worker(render(set=POSTGRES))
    assert worker["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}


def test_components_spread_over_nodes(render: Render) -> None:
    objects = render(set={**POSTGRES, "operator.replicas": 2})
    for name in ("molstream-worker", "molstream-operator"):
        deployment = find(objects, "Deployment", name)
        (constraint,) = pod_spec(deployment)["topologySpreadConstraints"]
        assert {k: v for k, v in constraint.items() if k != "labelSelector"} == SPREAD
        # The component's own Pods, and no other's.
        assert selects(constraint["labelSelector"], _labels(deployment))
        other = find(objects, "Deployment", "molstream-operator" if "worker" in name
                     else "molstream-worker")
        assert not selects(constraint["labelSelector"], _labels(other))


def test_spread_constraints_as_given(render: Render, tmp_path: Any) -> None:
    given = {"maxSkew": 2, "topologyKey": "topology.kubernetes.io/zone",
             "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": {"team": "chem"}}}
    values = tmp_path / "spread.yaml"
    values.write_text(yaml.safe_dump({"worker": {"topologySpreadConstraints": [
        given, {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule"}]}}))
    worker = _worker(render(values_files=[values]))
    first, second = pod_spec(worker)["topologySpreadConstraints"]
    assert first == given
    assert second["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"
    none = _worker(render(set={"worker.topologySpreadConstraints": "null"}))
    assert "topologySpreadConstraints" not in pod_spec(none)


@pytest.mark.parametrize(("values", "budgets"), [
    ({}, set()),
    (POSTGRES, {"molstream-worker"}),
    ({**POSTGRES, "operator.replicas": 2}, {"molstream-worker", "molstream-operator"}),
    ({"operator.replicas": 2}, {"molstream-operator"}),
    ({"database.existingSecret": "pg", "worker.autoscaling.keda.enabled": True},
     {"molstream-worker"}),
    ({**POSTGRES, "podDisruptionBudget.worker.enabled": False}, set()),
    ({"podDisruptionBudget.worker.enabled": True}, {"molstream-worker"}),
], ids=["sqlite", "two-workers", "two-operators-too", "two-operators", "keda", "off", "forced"])
def test_a_budget_when_there_is_more_than_one_pod_to_keep(
    render: Render, values: dict[str, Any], budgets: set[str]
) -> None:
    objects = render(set=values)
    found = _budgets(objects)
    assert set(found) == budgets
    for name, budget in found.items():
        deployment = find(objects, "Deployment", name)
        assert budget["spec"]["maxUnavailable"] == 1 and "minAvailable" not in budget["spec"]
        assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
        assert selects(budget["spec"]["selector"], _labels(deployment))
        assert budget["spec"]["selector"] == deployment["spec"]["selector"]


def test_min_available_instead(render: Render) -> None:
    budget = _budgets(render(set={**POSTGRES, "podDisruptionBudget.worker.minAvailable": "50%"}))
    assert budget["molstream-worker"]["spec"] == {
        **budget["molstream-worker"]["spec"], "minAvailable": "50%"}
    assert "maxUnavailable" not in budget["molstream-worker"]["spec"]


@pytest.mark.parametrize(("values", "message"), [
    ({**POSTGRES, "podDisruptionBudget.worker.minAvailable": 1,
      "podDisruptionBudget.worker.maxUnavailable": 1},
     "podDisruptionBudget.worker sets both minAvailable (1) and maxUnavailable (1)"),
    ({**POSTGRES, "podDisruptionBudget.worker.maxUnavailable": 0},
     "podDisruptionBudget.worker.maxUnavailable=0 would refuse every eviction"),
    ({"podDisruptionBudget.worker.enabled": True, "podDisruptionBudget.worker.minAvailable": 1},
     "podDisruptionBudget.worker.minAvailable=1 with worker.replicas=1 would refuse every "
     "eviction"),
    ({**POSTGRES, "podDisruptionBudget.worker.minAvailable": "100%"},
     "podDisruptionBudget.worker.minAvailable=100% with worker.replicas=2"),
    ({"metrics.enabled": True, "metrics.port": 8080, "operator.healthPort": 8081},
     "metrics.port=8080 is worker.healthPort too"),
    ({"podDisruptionBudget.worker.enabled": "yes"}, "/podDisruptionBudget/worker/enabled"),
    ({"worker.healthPort": 80}, "/worker/healthPort"),
    ({"worker.probes.liveness.periodSecs": 5}, "periodSecs"),
], ids=["both", "max-zero", "min-all", "min-100-percent", "metrics-port", "enabled-typo",
        "privileged-port", "probe-typo"])
def test_refused(helm_offline: Helm, values: dict[str, Any], message: str) -> None:
    assert message in refused(helm_offline, values)


# --- against the API server ---------------------------------------------------------------


@pytest.fixture(scope="module")
def installed(
    helm: Tool, kubectl: Tool, ir_crd: str
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Two PostgreSQL workers and two operators, installed; (namespace, objects)."""
    namespace = f"availability-{secrets.token_hex(3)}"
    kubectl("create", "namespace", namespace)
    release = "molstream"
    helm("install", release, CHART, "--namespace", namespace, "--no-hooks", *INSTALL_ARGS,
         *set_args({**POSTGRES, "operator.replicas": 2}), timeout=180)
    objects = parse(helm("get", "manifest", release, "--namespace", namespace).stdout)
    yield namespace, objects
    helm("uninstall", release, "--namespace", namespace, check=False)
    kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _get(kubectl: Tool, namespace: str, ref: str) -> dict[str, Any]:
    return json.loads(kubectl("get", ref, "-o", "json", namespace=namespace).stdout)


def _evict(kubectl: Tool, namespace: str, pod: str) -> Any:
    body = {"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": pod, "namespace": namespace}}
    return kubectl("create", "--raw", f"/api/v1/namespaces/{namespace}/pods/{pod}/eviction",
                   "-f", "-", input=json.dumps(body), check=False)


def _running(kubectl: Tool, namespace: str, pod: str, *, ready: bool) -> None:
    """The kubelet's part: the Pod runs, Ready or not."""
    status = {"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": str(ready), "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}
    kubectl("patch", "pod", pod, "--subresource=status", "--type=merge", "-p",
            json.dumps(status), namespace=namespace)


def _budget_status(kubectl: Tool, namespace: str, *, healthy: int, desired: int,
                   allowed: int) -> None:
    """The disruption controller's part: the worker budget's status."""
    budget = _get(kubectl, namespace, "poddisruptionbudget/molstream-worker")
    status = {"status": {"observedGeneration": budget["metadata"]["generation"],
                         "disruptionsAllowed": allowed, "currentHealthy": healthy,
                         "desiredHealthy": desired, "expectedPods": 3}}
    kubectl("patch", "poddisruptionbudget", "molstream-worker", "--subresource=status",
            "--type=merge", "-p", json.dumps(status), namespace=namespace)


def test_the_budgets_are_accepted(kubectl: Tool, installed: Any) -> None:
    namespace, objects = installed
    for name in ("molstream-worker", "molstream-operator"):
        budget = _get(kubectl, namespace, f"poddisruptionbudget/{name}")
        assert budget["spec"]["maxUnavailable"] == 1
        assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
        deployment = _get(kubectl, namespace, f"deployment/{name}")
        assert deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    worker = _get(kubectl, namespace, "deployment/molstream-worker")
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_evictions_keep_to_the_worker_s_budget(kubectl: Tool, installed: Any) -> None:
    namespace, objects = installed
    template = _worker(objects)["spec"]["template"]
    pods = ["worker-a", "worker-b", "worker-c"]
    for name in pods:
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "labels": template["metadata"]["labels"]},
               "spec": template["spec"]}
        kubectl("create", "-f", "-", namespace=namespace, input=json.dumps(pod))
        _running(kubectl, namespace, name, ready=True)
    # The disruption controller's part: three healthy Pods, one may go.
    _budget_status(kubectl, namespace, healthy=3, desired=2, allowed=1)

    first = _evict(kubectl, namespace, "worker-a")
    assert first.returncode == 0, first.stderr
    second = _evict(kubectl, namespace, "worker-b")
    assert second.returncode != 0
    assert "Cannot evict pod as it would violate the pod's disruption budget" in second.stderr
    # A worker that is not Ready (stuck, or never started) never holds a drain up, even with
    # the budget already spent (one left healthy of the two it keeps).
    _running(kubectl, namespace, "worker-b", ready=False)
    _budget_status(kubectl, namespace, healthy=1, desired=2, allowed=0)
    third = _evict(kubectl, namespace, "worker-b")
    assert third.returncode == 0, third.stderr
    left = kubectl("get", "pods", "-o", "name", namespace=namespace).stdout.split()
    assert left == ["pod/worker-c"]
