"""The Helm chart, without a cluster: helm lint, renders of the default and non-default value
sets, the refusals (SQLite with several workers, ...), the environment contract of every
component, and the hardening every Pod must carry."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from chartlib import (
    CHART,
    CI_VALUES,
    KIND_VALUES,
    Helm,
    Render,
    env_of,
    find,
    pod_spec,
    refused,
)
from molstream_dev.kube import REPO_ROOT
from molstream_operator.config import FetcherTemplate

EXTERNAL = CHART / "ci" / "external-postgres-values.yaml"
MINIMAL = CHART / "ci" / "minimal-values.yaml"
VALUE_SETS = {"defaults": [], "kind": [KIND_VALUES]} | {p.stem: [p] for p in CI_VALUES}


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(obj)
    if spec is None:
        return []
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_value_sets_exist() -> None:
    assert EXTERNAL in CI_VALUES and MINIMAL in CI_VALUES


@pytest.mark.parametrize("files", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_helm_lint_strict(helm_offline: Helm, files: list[Any]) -> None:
    args = [arg for path in files for arg in ("--values", path)]
    result = helm_offline("lint", "--strict", CHART, *args)
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("files", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_pod_is_hardened(render: Render, files: list[Any]) -> None:
    """Non-root, read-only root filesystem, no capabilities, no privilege escalation,
    requests and limits, pinned images, no API token unless it is the operator."""
    objects = render(values_files=files)
    pods = [o for o in objects if pod_spec(o) is not None]
    assert pods
    for obj in pods:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        spec = pod_spec(obj)
        assert spec is not None
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec.get("hostNetwork") is not True and spec.get("hostPID") is not True, where
        assert spec["automountServiceAccountToken"] is ("operator" in where), where
        for container in containers(obj):
            at = f"{where} container {container['name']}"
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, at
            assert ctx["allowPrivilegeEscalation"] is False, at
            assert ctx["capabilities"] == {"drop": ["ALL"]}, at
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), at
            assert "memory" in resources["limits"] and "cpu" in resources["limits"], at
            image = container["image"]
            assert re.search(r"(:[\w.-]+|@sha256:[0-9a-f]{64})$", image), at
            assert not image.endswith(":latest"), at


def test_defaults(render: Render) -> None:
    objects = render()
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    # Kafka UI and the demo FTP server are off unless asked for (k8s/kind-values.yaml does).
    assert not {n for n in kinds if n[1] in {"molstream-kafka-ui", "molstream-ftp"}}
    objects = render(values_files=[KIND_VALUES])
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    expected = {
        ("StatefulSet", "molstream-kafka"),
        ("Service", "molstream-kafka"),
        ("Job", "molstream-kafka-topics"),
        ("Deployment", "molstream-redis"),
        ("Deployment", "molstream-kafka-ui"),
        ("Deployment", "molstream-worker"),
        ("PersistentVolumeClaim", "molstream-data"),
        ("Deployment", "molstream-operator"),
        ("ServiceAccount", "molstream-operator"),
        ("Role", "molstream-operator"),
        ("RoleBinding", "molstream-operator"),
        ("ConfigMap", "molstream-fetcher-template"),
        ("Deployment", "molstream-ftp"),
        ("Service", "molstream-ftp"),  # the host of k8s/ingestrequest.yaml
        ("Pod", "molstream-test"),
    }
    assert expected <= kinds
    # The CRD is a template (helm upgrades it), kept on uninstall; never in crds/, which helm
    # would install but never upgrade.
    crd = find(objects, "CustomResourceDefinition", "ingestrequests.molstream.io")
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert not (CHART / "crds").exists()

    worker = find(objects, "Deployment", "molstream-worker")
    assert worker["spec"]["replicas"] == 1
    assert worker["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    assert container["args"][0] == "worker"
    env = env_of(container)
    assert env["MOLSTREAM_KAFKA_BOOTSTRAP"] == "molstream-kafka.molstream.svc:9092"
    # Per release: <namespace>.<release>, and the consumer groups after it.
    assert env["MOLSTREAM_TOPIC_PREFIX"] == "molstream.molstream"
    assert env["MOLSTREAM_WORKER_GROUP"] == "molstream.molstream-worker"
    assert env["MOLSTREAM_DATABASE_URL"] == "sqlite:////data/molstream.db"
    # The password comes from the Redis Secret, expanded by the kubelet ($(VAR)), and is
    # defined before the URL that uses it.
    assert env["MOLSTREAM_REDIS_URL"] == (
        "redis://:$(REDIS_PASSWORD)@molstream-redis.molstream.svc:6379/0"
    )
    assert env["REDIS_PASSWORD"] == {
        "secretKeyRef": {"name": "molstream-redis", "key": "password"}
    }
    names = [e["name"] for e in container["env"]]
    assert names.index("REDIS_PASSWORD") < names.index("MOLSTREAM_REDIS_URL")
    assert env["MOLSTREAM_REPORTS_DIR"] == "/data/reports"
    assert env["MOLSTREAM_WORKER_INSTANCE_ID"] == "molstream-worker"  # Recreate: one at a time
    assert env["MOLSTREAM_MODE"] in {"upsert", "insert-only"}
    assert int(env["MOLSTREAM_BATCH_SIZE"]) > 0
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in worker["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts["/data"]]["persistentVolumeClaim"]["claimName"] == "molstream-data"

    kafka = find(objects, "StatefulSet", "molstream-kafka")
    assert re.fullmatch(r"apache/kafka:3\.9\.\d+", containers(kafka)[0]["image"])
    properties = find(objects, "ConfigMap", "molstream-kafka")["data"]["server.properties"]
    assert "process.roles=broker,controller" in properties  # KRaft, no ZooKeeper
    assert "advertised.listeners=PLAINTEXT://molstream-kafka.molstream.svc:9092" in properties

    topics_job = find(objects, "Job", "molstream-kafka-topics")
    script = containers(topics_job)[0]["args"][0]
    assert '--topic "$PREFIX.rows"' in script and "for topic in rejected events" in script
    assert env_of(containers(topics_job)[0])["PREFIX"] == "molstream.molstream"

    redis_conf = find(objects, "ConfigMap", "molstream-redis")["data"]["redis.conf"]
    assert re.search(r"^maxmemory \d+[kmg]b$", redis_conf, re.M)
    assert "maxmemory-policy allkeys-lru" in redis_conf
    assert "protected-mode yes" in redis_conf
    assert not re.search(r"^\s*requirepass", redis_conf, re.M)  # never in a ConfigMap

    ui = find(objects, "Deployment", "molstream-kafka-ui")
    assert containers(ui)[0]["image"].startswith("kafbat/kafka-ui:")
    ui_env = env_of(containers(ui)[0])
    assert ui_env["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"] == env["MOLSTREAM_KAFKA_BOOTSTRAP"]

    ftp = find(objects, "Deployment", "molstream-ftp")
    (sample,) = ftp["spec"]["template"]["spec"]["initContainers"]
    assert sample["args"][0] == "sample"
    assert "--out=/srv/ftp/activities.csv.gz" in sample["args"]
    server = containers(ftp)[1]["args"][0]
    assert server.startswith("exec python -m pyftpdlib --port=2121") and "--write" not in server
    assert "FTP_PASSWORD" not in yaml.safe_dump(ftp)  # credentials come from the Secret's files


def test_operator_settings(render: Render) -> None:
    objects = render()
    operator = find(objects, "Deployment", "molstream-operator")
    spec = operator["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "molstream-operator"
    (container,) = spec["containers"]
    assert container["command"] == ["python", "-m", "molstream_operator"]
    env = env_of(container)
    assert env["MOLSTREAM_KAFKA_BOOTSTRAP"] == "molstream-kafka.molstream.svc:9092"
    assert env["MOLSTREAM_TOPIC_PREFIX"] == "molstream.molstream"
    assert env["MOLSTREAM_OPERATOR_GROUP_ID"] == "molstream.molstream-operator"
    assert env["MOLSTREAM_ALLOWED_HOSTS"] == ""
    template_path = env["MOLSTREAM_FETCHER_TEMPLATE"]
    mount = next(m for m in container["volumeMounts"] if template_path.startswith(m["mountPath"]))
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    config_map = find(objects, "ConfigMap", volume["configMap"]["name"])
    data = yaml.safe_load(config_map["data"][template_path.rsplit("/", 1)[1]])

    # The operator's own parser takes the file, and keeps what the chart says.
    template = FetcherTemplate.from_mapping(data)
    assert set(data) == {
        "image",
        "imagePullPolicy",
        "resources",
        "securityContext",
        "podSecurityContext",
        "serviceAccountName",
        "env",
        "volumes",
        "volumeMounts",
        # Read by the operator's FetcherTemplate (issue 19); an older operator ignores them.
        "imagePullSecrets",
        "nodeSelector",
        "tolerations",
        "affinity",
        "priorityClassName",
        "ttlSecondsAfterFinished",
    }
    assert data["ttlSecondsAfterFinished"] == 3600
    assert data["imagePullSecrets"] == [] and data["priorityClassName"] == ""
    assert template.image == "molstream:0.2.0"
    assert template.serviceAccountName == "molstream-fetcher"
    assert template.securityContext["readOnlyRootFilesystem"] is True
    assert template.podSecurityContext["runAsNonRoot"] is True
    assert {"requests", "limits"} <= set(template.resources)
    work_dir = next(e["value"] for e in template.env if e["name"] == "MOLSTREAM_WORK_DIR")
    scratch = next(m for m in template.volumeMounts if work_dir.startswith(m["mountPath"]))
    assert any(v["name"] == scratch["name"] and "emptyDir" in v for v in template.volumes)
    fetcher_sa = find(objects, "ServiceAccount", "molstream-fetcher")
    assert fetcher_sa["automountServiceAccountToken"] is False


def _rules(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    table: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                table.setdefault((group, resource), set()).update(rule["verbs"])
    return table


def test_operator_role_is_least_privilege(render: Render) -> None:
    """The Role grants exactly what the operator says it uses (operator/rbac-rules.yaml)."""
    role = find(render(), "Role", "molstream-operator")
    needs = yaml.safe_load((REPO_ROOT / "operator" / "rbac-rules.yaml").read_text())
    rules = _rules(role["rules"])
    assert rules == _rules(needs)
    # Credentials reach the fetcher through secretKeyRef; the operator may only `get` one
    # Secret by name (its opt-in label, molstream.io/source-credentials), never list them.
    assert rules.get(("", "secrets"), {"get"}) == {"get"}
    assert all("*" not in verbs for verbs in rules.values())
    assert all("*" not in key for key in rules)


def test_non_default_external_kafka_postgres(render: Render) -> None:
    objects = render(values_files=[EXTERNAL], set={"kafka-ui.enabled": "true"})
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    # No broker, no demo FTP server.
    assert not {n for n in names if n[1] == "molstream-kafka" or n[1].startswith("molstream-ftp")}
    bootstrap = "kafka-0.kafka.example.svc:9092,kafka-1.kafka.example.svc:9092"

    worker = find(objects, "Deployment", "molstream-worker")
    assert worker["spec"]["replicas"] == 3
    assert worker["spec"]["strategy"]["type"] == "RollingUpdate"
    env = env_of(worker["spec"]["template"]["spec"]["containers"][0])
    assert env["MOLSTREAM_KAFKA_BOOTSTRAP"] == bootstrap
    assert env["MOLSTREAM_TOPIC_PREFIX"] == "chembl"
    assert env["MOLSTREAM_ROWS_PARTITIONS"] == "3"
    # The URL with its password is in a Secret, not in the Pod spec.
    ref = env["MOLSTREAM_DATABASE_URL"]["secretKeyRef"]
    secret = find(objects, "Secret", ref["name"])
    assert secret["stringData"][ref["key"]].startswith("postgresql+psycopg://")
    assert "s3cret" not in yaml.safe_dump(worker)

    # Topics are still created, on the external cluster, with the prefix and partitions.
    job_container = containers(find(objects, "Job", "molstream-kafka-topics"))[0]
    assert env_of(job_container)["BOOTSTRAP"] == bootstrap
    assert env_of(job_container)["PREFIX"] == "chembl"
    assert "--partitions 3" in job_container["args"][0]

    operator_env = env_of(
        find(objects, "Deployment", "molstream-operator")["spec"]["template"]["spec"]["containers"][
            0
        ]
    )
    assert operator_env["MOLSTREAM_KAFKA_BOOTSTRAP"] == bootstrap
    assert operator_env["MOLSTREAM_ALLOWED_HOSTS"] == "ftp.ebi.ac.uk,*.example.org"
    ui = find(objects, "Deployment", "molstream-kafka-ui")
    assert env_of(containers(ui)[0])["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"] == bootstrap
    test_pod = find(objects, "Pod", "molstream-test")
    assert "FTP_HOST" not in env_of(test_pod["spec"]["containers"][0])


def test_minimal(render: Render) -> None:
    objects = render(values_files=[MINIMAL])
    names = {o["metadata"]["name"] for o in objects}
    assert not {"molstream-redis", "molstream-kafka-ui", "molstream-ftp"} & names
    assert not any(o["kind"] == "ClusterRole" for o in objects)
    worker = find(objects, "Deployment", "molstream-worker")
    assert env_of(worker["spec"]["template"]["spec"]["containers"][0])["MOLSTREAM_REDIS_URL"] == ""


def test_kind_values(render: Render) -> None:
    objects = render(values_files=[KIND_VALUES])
    service = find(objects, "Service", "molstream-kafka-ui")
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"][0]["nodePort"] == 30080
    worker = find(objects, "Deployment", "molstream-worker")
    assert worker["spec"]["template"]["spec"]["containers"][0]["image"] == "molstream:dev"
    find(objects, "Deployment", "molstream-ftp")


def test_image_digest(render: Render) -> None:
    digest = "sha256:" + "ab" * 32
    objects = render(set={"image.repository": "registry.example/molstream", "image.digest": digest})
    worker = find(objects, "Deployment", "molstream-worker")
    image = worker["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"registry.example/molstream@{digest}"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"worker.replicas": 3},
            "worker.replicas=3 needs PostgreSQL: with SQLite (database.url empty or sqlite://) "
            "only one worker may write the database",
        ),
        (
            {"worker.replicas": 2, "database.url": "sqlite:////data/other.db"},
            "worker.replicas=2 needs PostgreSQL",
        ),
        ({"worker.persistence.enabled": "false"}, "would lose the SQLite database"),
        (
            {"kafka.external.bootstrapServers": "kafka:9092", "kafka-ui.enabled": "true"},
            "set kafka-ui.bootstrapServers to the same servers",
        ),
        (
            {"worker.replicas": 3, "database.existingSecret": "pg"},
            "worker.replicas=3 is more than kafka.topics.rowsPartitions=1: each partition of "
            "the rows topic is consumed by one worker at a time",
        ),
        ({"config.mode": "merge"}, "/config/mode"),
        ({"worker.replicas": 0}, "/worker/replicas"),
        ({"image.pullPolicy": "Sometimes"}, "/image/pullPolicy"),
        ({"databse.url": "x"}, "databse"),  # a typo is an error, not a silent no-op
        # kafka-storage would read an id starting with '-' as an option
        ({"kafka.clusterId": "-5BBKx1DVWmXObJSn8KbnA"}, "at '/clusterId'"),
    ],
    ids=[
        "sqlite-3-replicas",
        "sqlite-url-2-replicas",
        "sqlite-no-volume",
        "external-kafka-ui",
        "postgres-replicas-above-partitions",
        "schema-mode",
        "schema-replicas",
        "schema-pull-policy",
        "schema-unknown-key",
        "schema-kafka-cluster-id",
    ],
)
def test_render_refused(helm_offline: Helm, values: dict[str, Any], message: str) -> None:
    assert message in refused(helm_offline, values)


def test_postgres_allows_replicas(render: Render) -> None:
    objects = render(
        set={
            "worker.replicas": 2,
            "database.existingSecret": "pg",
            "kafka.topics.rowsPartitions": 4,
        }
    )
    worker = find(objects, "Deployment", "molstream-worker")
    assert worker["spec"]["replicas"] == 2
    # No volume shared by the replicas (a ReadWriteOnce claim attaches on one node only):
    # no claim at all, and each Pod's reports on an emptyDir of its own.
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    volumes = {v["name"]: v for v in worker["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["data"] and "persistentVolumeClaim" not in volumes["data"]
    env = env_of(worker["spec"]["template"]["spec"]["containers"][0])
    assert env["MOLSTREAM_DATABASE_URL"] == {"secretKeyRef": {"name": "pg", "key": "url"}}
    assert "MOLSTREAM_WORKER_INSTANCE_ID" not in env  # Pods overlap in a rolling update
    assert not any(o["kind"] == "Secret" and o["metadata"]["name"] == "pg" for o in objects)


_DOCUMENTED_BY_PARENT = {
    "requests",
    "limits",
    "cpu",
    "memory",
    "runAsNonRoot",
    "runAsUser",
    "runAsGroup",
    "fsGroup",
    "seccompProfile",
    "type",
    "allowPrivilegeEscalation",
    "readOnlyRootFilesystem",
    "capabilities",
    "drop",
    "tolerations",
    "affinity",
}


@pytest.mark.parametrize(
    "values_file",
    [CHART / "values.yaml", *sorted((CHART / "charts").glob("*/values.yaml"))],
    ids=lambda p: str(p.relative_to(CHART)),
)
def test_values_documented_line_by_line(values_file: Any) -> None:
    """Every key carries a comment right above it, except the plain Kubernetes fields of a
    documented block (resources, security contexts, scheduling)."""
    lines = values_file.read_text().splitlines()
    undocumented = []
    for number, line in enumerate(lines):
        match = re.match(r"^(\s*)([\w.-]+):", line)
        if not match:
            continue
        key = match.group(2)
        previous = next((p.strip() for p in reversed(lines[:number]) if p.strip()), "")
        if previous.startswith("#") or key in _DOCUMENTED_BY_PARENT:
            continue
        undocumented.append(f"{number + 1}: {line.strip()}")
    assert not undocumented, f"keys without a comment in {values_file}:\n" + "\n".join(undocumented)


def test_schema_covers_values() -> None:
    """values.schema.json forbids unknown keys at the top level and in molstream's own blocks,
    so every key of values.yaml must be declared there."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(value: Any, node: dict[str, Any], path: str) -> list[str]:
        missing = []
        if isinstance(value, dict) and node.get("type") == "object" and "properties" in node:
            for key, child in value.items():
                if key not in node["properties"]:
                    missing.append(f"{path}{key}")
                else:
                    missing += walk(child, node["properties"][key], f"{path}{key}.")
        return missing

    assert walk(values, schema, "") == []


def test_the_default_image_tag_is_the_package_s_version() -> None:
    """appVersion is the default tag of the molstream image: the release the chart needs
    (its health endpoints, Kafka security...), the same as pyproject.toml's version."""
    import tomllib

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]
