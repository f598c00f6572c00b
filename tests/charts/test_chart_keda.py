"""KEDA autoscaling of the worker (worker.autoscaling.keda): a ScaledObject on the lag of the
worker's consumer group on <prefix>.rows, never more replicas than partitions, PostgreSQL only,
with a TriggerAuthentication that gives KEDA the worker's own Kafka credentials. The
ScaledObject is checked against KEDA's CRD schema in the real API server (which refuses a wrong
field); KEDA's TriggerAuthentication CRD is not in tests/data/crds, so that object is checked
against the parameters KEDA documents for its Kafka scaler."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import thirdparty_crds
import yaml
from chartlib import CHART, INSTALL_ARGS, Helm, Render, env_of, find, parse, pod_spec, refused
from molstream_dev.pytest_kube import Tool

KEDA = {
    "database.url": "postgresql+psycopg://molstream:pw@pg-rw:5432/molstream",
    "kafka.topics.rowsPartitions": "6",
    "worker.autoscaling.keda.enabled": "true",
    "worker.autoscaling.keda.minReplicas": "2",
    "worker.autoscaling.keda.maxReplicas": "6",
    "worker.autoscaling.keda.lagThreshold": "20",
}
SECURED = {
    **KEDA,
    "kafka.external.bootstrapServers": "my-cluster-kafka-bootstrap:9093",
    "global.kafka.security.protocol": "SASL_SSL",
    "global.kafka.security.sasl.username": "molstream",
    "global.kafka.security.sasl.passwordSecret.name": "molstream-kafka",
    "global.kafka.security.tls.caSecret.name": "my-cluster-cluster-ca-cert",
}
# KEDA's Kafka scaler (keda.sh docs, scalers/apache-kafka): trigger metadata and the
# TriggerAuthentication parameters it reads.
TRIGGER_METADATA = {
    "bootstrapServers", "consumerGroup", "topic", "lagThreshold", "activationLagThreshold",
    "offsetResetPolicy", "allowIdleConsumers", "scaleToZeroOnInvalidOffset",
    "excludePersistentLag", "limitToPartitionsWithLag", "version", "partitionLimitation", "sasl",
    "saslTokenProvider", "tls", "unsafeSsl", "awsRegion",
}
AUTH_PARAMETERS = {"sasl", "username", "password", "tls", "ca", "cert", "key", "keyPassword"}


def _keda(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    scaled = find(objects, "ScaledObject", "molstream-worker")
    auth = [o for o in objects if o["kind"] == "TriggerAuthentication"]
    return scaled, (auth[0] if auth else None)


def _check_auth(auth: dict[str, Any], worker: dict[str, Any]) -> dict[str, Any]:
    """TriggerAuthentication as KEDA reads it: known parameters; env names a variable of the
    worker container. Returns parameter → source."""
    assert auth["apiVersion"] == "keda.sh/v1alpha1"
    assert set(auth["spec"]) <= {"secretTargetRef", "env"}
    sources: dict[str, Any] = {}
    for ref in auth["spec"].get("secretTargetRef", []):
        assert set(ref) == {"parameter", "name", "key"}
        sources[ref["parameter"]] = ("secret", ref["name"], ref["key"])
    container = pod_spec(worker)["containers"][0]
    for ref in auth["spec"].get("env", []):
        assert set(ref) == {"parameter", "name", "containerName"}
        assert ref["containerName"] == container["name"]
        sources[ref["parameter"]] = ("env", env_of(container)[ref["name"]])
    assert set(sources) <= AUTH_PARAMETERS
    return sources


def test_plaintext_scaled_object(render: Render) -> None:
    objects = render(set=KEDA)
    scaled, auth = _keda(objects)
    assert auth is None
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": "molstream-worker"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 6)
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    assert set(trigger["metadata"]) <= TRIGGER_METADATA
    worker = find(objects, "Deployment", "molstream-worker")
    worker_env = env_of(pod_spec(worker)["containers"][0])
    assert trigger["metadata"] == {
        "bootstrapServers": worker_env["MOLSTREAM_KAFKA_BOOTSTRAP"],
        "consumerGroup": worker_env["MOLSTREAM_WORKER_GROUP"],
        "topic": worker_env["MOLSTREAM_TOPIC_PREFIX"] + ".rows",
        "lagThreshold": "20",
        "offsetResetPolicy": "earliest",
        "allowIdleConsumers": "false",
        "tls": "disable",
    }
    # The HPA KEDA creates owns the replica count.
    assert "replicas" not in worker["spec"]


def test_sasl_ssl_uses_the_workers_credentials(render: Render) -> None:
    objects = render(set=SECURED)
    scaled, auth = _keda(objects)
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["metadata"]["sasl"] == "scram_sha512"
    assert trigger["metadata"]["tls"] == "enable"
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    assert _check_auth(auth, find(objects, "Deployment", "molstream-worker")) == {
        "username": ("env", "molstream"),
        "password": ("secret", "molstream-kafka", "password"),
        "ca": ("secret", "my-cluster-cluster-ca-cert", "ca.crt"),
    }


def test_mtls_and_strimzi_users(render: Render) -> None:
    objects = render(set={
        **KEDA, "kafka.external.bootstrapServers": "my-cluster-kafka-bootstrap:9093",
        "kafka.topics.create": "false",
        "global.kafka.security.protocol": "SSL",
        # (Strimzi's listeners present its cluster CA's certificates: the chart asks for it)
        "global.kafka.security.tls.caSecret.name": "my-cluster-cluster-ca-cert",
        "global.kafka.strimzi.enabled": "true", "global.kafka.strimzi.clusterName": "my-cluster"})
    scaled, auth = _keda(objects)
    assert "sasl" not in scaled["spec"]["triggers"][0]["metadata"]
    # The worker's own KafkaUser Secret (tls: user.crt, user.key), Strimzi's cluster CA.
    assert _check_auth(auth, find(objects, "Deployment", "molstream-worker")) == {
        "ca": ("secret", "my-cluster-cluster-ca-cert", "ca.crt"),
        "cert": ("secret", "molstream-worker", "user.crt"),
        "key": ("secret", "molstream-worker", "user.key"),
    }


def test_unsafe_ssl_where_the_host_name_is_not_checked(render: Render) -> None:
    """KEDA cannot skip the host name check alone: with checkHostname=false the chart refuses
    KEDA unless worker.autoscaling.keda.unsafeSsl says to skip every certificate check."""
    objects = render(set={**SECURED, "global.kafka.security.tls.checkHostname": "false",
                          "worker.autoscaling.keda.unsafeSsl": "true"})
    (trigger,) = _keda(objects)[0]["spec"]["triggers"]
    assert set(trigger["metadata"]) <= TRIGGER_METADATA
    assert (trigger["metadata"]["tls"], trigger["metadata"]["unsafeSsl"]) == ("enable", "true")
    # Not over PLAINTEXT (no TLS to check), and not by default.
    plain = render(set={**KEDA, "worker.autoscaling.keda.unsafeSsl": "true"})
    assert "unsafeSsl" not in _keda(plain)[0]["spec"]["triggers"][0]["metadata"]
    assert "unsafeSsl" not in _keda(render(set=SECURED))[0]["spec"]["triggers"][0]["metadata"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"database.url": ""}, "worker.autoscaling.keda.enabled=true needs PostgreSQL"),
        ({"worker.autoscaling.keda.maxReplicas": "7"},
         "worker.autoscaling.keda.maxReplicas=7 is more than kafka.topics.rowsPartitions=6"),
        ({"worker.autoscaling.keda.minReplicas": "5", "worker.autoscaling.keda.maxReplicas": "4"},
         "worker.autoscaling.keda.minReplicas=5 is more than "
         "worker.autoscaling.keda.maxReplicas=4"),
        ({**SECURED, "global.kafka.security.tls.checkHostname": "false"},
         "worker.autoscaling.keda.enabled=true needs global.kafka.security.tls.checkHostname=true"
         ": KEDA's Kafka scaler cannot skip the host name check alone (set "
         "worker.autoscaling.keda.unsafeSsl=true to skip every certificate check)."),
    ],
    ids=["sqlite", "more-than-partitions", "min-above-max", "no-hostname-check"],
)
def test_refused(helm_offline: Helm, values: dict[str, str], message: str) -> None:
    assert message in refused(helm_offline, {**KEDA, **values})


@pytest.fixture(scope="module")
def keda_release(helm: Tool, kubectl: Tool, ir_crd: str) -> Iterator[tuple[str, Any]]:
    """The PLAINTEXT KEDA release, installed (no TriggerAuthentication: its CRD is missing)."""
    thirdparty_crds.install(kubectl)
    namespace = f"keda-{secrets.token_hex(3)}"
    kubectl("create", "namespace", namespace)
    sets = [a for k, v in KEDA.items() for a in ("--set", f"{k}={v}")]
    installed = helm("install", "molstream", CHART, "--namespace", namespace, "--no-hooks",
                     *INSTALL_ARGS, *sets, timeout=180)
    assert "Workers: 2 to 6, scaled by KEDA" in installed.stdout  # NOTES.txt
    manifest = parse(helm("get", "manifest", "molstream", "--namespace", namespace).stdout)
    yield namespace, manifest
    helm("uninstall", "molstream", "--namespace", namespace, check=False)
    kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_scaled_object_installs(kubectl: Tool, keda_release: Any) -> None:
    namespace, _ = keda_release
    stored = yaml.safe_load(kubectl("get", "scaledobject/molstream-worker", "--output=yaml",
                                    namespace=namespace).stdout)
    assert stored["spec"]["maxReplicaCount"] == 6


def test_secured_scaled_object_accepted(kubectl: Tool, keda_release: Any, render: Render) -> None:
    namespace, _ = keda_release
    scaled, _ = _keda(render(set=SECURED))
    scaled["metadata"]["name"] = "secured"
    result = thirdparty_crds.dry_run(kubectl, namespace, scaled)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["triggers"][0]["metadata"].update(allowIdleConsumers=False),
         "spec.triggers[0].metadata.allowIdleConsumers"),
        (lambda s: s.update(maxReplicaCount=0), "spec.maxReplicaCount"),
        (lambda s: s["scaleTargetRef"].pop("name"), "spec.scaleTargetRef.name"),
    ],
    ids=["metadata-not-a-string", "max-zero", "no-target"],
)
def test_schema_refuses_a_wrong_field(kubectl: Tool, keda_release: Any, render: Render,
                                      change: Any, message: str) -> None:
    """The API server checks the ScaledObject against KEDA's schema: a wrong field fails."""
    namespace, _ = keda_release
    scaled, _ = _keda(render(set=KEDA))
    scaled = copy.deepcopy(scaled)
    scaled["metadata"]["name"] = "wrong"
    change(scaled["spec"])
    result = thirdparty_crds.dry_run(kubectl, namespace, scaled)
    assert result.returncode != 0
    assert message in result.stderr


def test_the_workers_own_user(render: Render) -> None:
    """KEDA uses the worker's own Kafka user (worker.kafkaUser), not the shared one."""
    # (the fetcher with its own too: the chart leaves it no shared credential once others
    # have their own)
    objects = render(set={**SECURED, "worker.kafkaUser.username": "ms-worker",
                          "worker.kafkaUser.secretName": "ms-worker",
                          "fetcher.kafkaUser.username": "ms-fetcher",
                          "fetcher.kafkaUser.secretName": "ms-fetcher"})
    _, auth = _keda(objects)
    sources = _check_auth(auth, find(objects, "Deployment", "molstream-worker"))
    assert sources["username"] == ("env", "ms-worker")
    assert sources["password"] == ("secret", "ms-worker", "password")
