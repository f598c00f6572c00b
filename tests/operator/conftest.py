"""Fixtures for the operator tests: the CRD, a least-privilege identity, the operator process.

The operator runs through its real entry point (``python -m molstream_operator``) in a
subprocess, authenticated as a ServiceAccount bound to a Role made of exactly
``operator/rbac-rules.yaml``: every integration test also proves those rules are enough.
No controller-manager runs in the test API server, so tests play the Job controller by patching
Job status, and play the fetcher and the worker by publishing their events to Kafka.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError
from molstream_dev.crd import crd_manifest
from molstream_operator.kube import Kube
from operator_harness import (
    ALLOWED_HOSTS,
    IMAGE,
    RBAC_RULES,
    Namespace,
    OperatorProcess,
    Publisher,
    free_port,
    wait_for,
)


@pytest.fixture(scope="session")
def ir_crd(kubectl: Any) -> str:
    """The chart's CRD (templates/crd.yaml, rendered), applied; its manifest."""
    manifest = crd_manifest()
    kubectl("apply", "-f", "-", input=manifest)
    kubectl(
        "wait", "--for=condition=Established", "crd/ingestrequests.molstream.io", "--timeout=60s"
    )
    return manifest


@pytest.fixture(scope="session")
def admin(kube_apiserver: Any) -> Iterator[Kube]:
    kube = Kube.from_kubeconfig(kube_apiserver.kubeconfig)
    yield kube
    kube.close()


@pytest.fixture
def operator_kubeconfig(
    kube_apiserver: Any, kubectl: Any, kube_namespace: str, tmp_path: Path
) -> Path:
    """A kubeconfig for a ServiceAccount that holds only the rules of operator/rbac-rules.yaml."""
    rules = yaml.safe_load(RBAC_RULES.read_text())
    manifests = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "molstream-operator"}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "molstream-operator"},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "molstream-operator"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "molstream-operator",
            },
            "subjects": [
                {
                    "kind": "ServiceAccount",
                    "name": "molstream-operator",
                    "namespace": kube_namespace,
                }
            ],
        },
    ]
    kubectl("apply", "-f", "-", namespace=kube_namespace, input=yaml.safe_dump_all(manifests))
    token = kubectl(
        "create", "token", "molstream-operator", "--duration=2h", namespace=kube_namespace
    ).stdout.strip()
    config = yaml.safe_load(Path(kube_apiserver.kubeconfig).read_text())
    for user in config["users"]:
        user["user"] = {"token": token}
    path = tmp_path / "operator.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@pytest.fixture
def fetcher_template(tmp_path: Path) -> Path:
    path = tmp_path / "fetcher.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "image": IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "serviceAccountName": "molstream-fetcher",
                "env": [{"name": "MOLSTREAM_LOG_FORMAT", "value": "json"}],
            }
        )
    )
    return path


@pytest.fixture
def topic_prefix() -> str:
    return f"optest-{secrets.token_hex(4)}"


@pytest.fixture
def start_operator(
    operator_kubeconfig: Path,
    fetcher_template: Path,
    kube_namespace: str,
    topic_prefix: str,
    tmp_path: Path,
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start the operator for the test's namespace: ``start_operator(kafka=bootstrap)``."""
    started: list[OperatorProcess] = []
    group = f"molstream-operator-{secrets.token_hex(4)}"

    def start(
        *, kafka: str | None = None, metrics: bool = False, extra_env: dict | None = None
    ) -> OperatorProcess:
        port = free_port()
        metrics_port = free_port() if metrics else None
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOLSTREAM_")}
        env.update(
            KUBECONFIG=str(operator_kubeconfig),
            MOLSTREAM_FETCHER_TEMPLATE=str(fetcher_template),
            MOLSTREAM_ALLOWED_HOSTS=ALLOWED_HOSTS,
            MOLSTREAM_KAFKA_BOOTSTRAP=kafka or "",
            MOLSTREAM_TOPIC_PREFIX=topic_prefix,
            MOLSTREAM_OPERATOR_GROUP_ID=group,
            MOLSTREAM_ALLOW_INSECURE_CREDENTIALS="true",  # (the harness's ftp:// requests)
        )
        env.update(extra_env or {})
        if metrics_port is not None:
            env.update(MOLSTREAM_METRICS_PORT=str(metrics_port), MOLSTREAM_METRICS_HOST="127.0.0.1")
        argv = [
            sys.executable,
            "-m",
            "molstream_operator",
            "-n",
            kube_namespace,
            "--liveness",
            f"http://127.0.0.1:{port}/healthz",
            "--log-format",
            "json",
        ]
        process = OperatorProcess(
            argv, env, tmp_path / "operator.log", f"http://127.0.0.1:{port}/healthz", metrics_port
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def ns(kube_namespace: str, admin: Kube, kubectl: Any, ir_crd: Path) -> Namespace:
    return Namespace(kube_namespace, admin, kubectl)


# -- playing the fetcher and the worker: their events, published to Kafka -----------------


@pytest.fixture
def publish(kafka_bootstrap: str, topic_prefix: str) -> Iterator[Publisher]:
    topic = f"{topic_prefix}.events"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()
    publisher = Publisher(kafka_bootstrap, topic)
    yield publisher
    publisher.close()


@pytest.fixture
def operator_with_kafka(ns: Namespace, start_operator: Any, kafka_bootstrap: str) -> Any:
    op = start_operator(kafka=kafka_bootstrap)
    ns.context = op.tail
    wait_for(
        lambda: (op.healthy() or {}).get("events", {}).get("connected"),
        what="the event consumer connected",
        context=op.tail,
    )
    return op
