"""Strimzi resources (global.kafka.strimzi): KafkaTopics as kafka.topics says and one KafkaUser
per component with the least ACLs its code needs, each Pod mounting its own user's Secret;
checked against Strimzi's own CRD schemas (tests/data/crds) in the real API server, which
refuses a wrong field. The tested production values (charts/molstream/examples/
strimzi-cnpg-values.yaml: Strimzi SCRAM-SHA-512 over TLS + CloudNativePG) install as a whole."""

from __future__ import annotations

import copy
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import thirdparty_crds
import yaml
from chartlib import (
    CHART,
    INSTALL_ARGS,
    Helm,
    Render,
    env_of,
    find,
    operator_built_job,
    parse,
    pod_spec,
    refused,
)
from molstream.config import Topics
from molstream.kafka_access import check_access
from molstream.kafka_security import KafkaSecurity
from molstream.publish import ensure_topics
from molstream_dev.pytest_kube import Tool

EXAMPLE = CHART / "examples" / "strimzi-cnpg-values.yaml"
SPEC = {"url": "https://ftp.example.org/chembl/activities.csv.gz"}
# A Strimzi cluster with a TLS listener and mTLS (KafkaUsers with authentication tls).
MTLS = {
    "kafka.external.bootstrapServers": "my-cluster-kafka-bootstrap:9093",
    "kafka.topics.create": "false",
    "global.kafka.security.protocol": "SSL",
    "global.kafka.security.tls.caSecret.name": "my-cluster-cluster-ca-cert",
    "global.kafka.strimzi.enabled": "true",
    "global.kafka.strimzi.clusterName": "my-cluster",
}


def _kinds(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _acls(user: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(resource type, name, operation) of a KafkaUser's allow rules."""
    return {
        (acl["resource"]["type"], acl["resource"].get("name", ""), op)
        for acl in user["spec"]["authorization"]["acls"]
        for op in acl["operations"]
        if acl.get("type", "allow") == "allow"
    }


def _secret_volumes(spec: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    return {v["name"]: (v["secret"]["secretName"], [i["key"] for i in v["secret"]["items"]])
            for v in spec["volumes"] if "secret" in v}


def test_example_topics(render: Render) -> None:
    topics = _kinds(render(values_files=[EXAMPLE], namespace="kafka"), "KafkaTopic")
    assert set(topics) == {"molstream-rows", "molstream-rejected", "molstream-events"}
    for topic in topics.values():
        assert topic["apiVersion"] == "kafka.strimzi.io/v1"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "my-cluster"
        assert topic["spec"]["replicas"] == 3
        assert topic["spec"]["config"]["min.insync.replicas"] == 2
    rows = topics["molstream-rows"]["spec"]
    assert rows["topicName"] == "chembl.rows"
    assert rows["partitions"] == 6
    assert rows["config"]["max.message.bytes"] == 16777216
    assert topics["molstream-events"]["spec"]["topicName"] == "chembl.events"
    assert topics["molstream-events"]["spec"]["partitions"] == 1
    assert topics["molstream-rejected"]["spec"]["partitions"] == 1


def test_example_users_least_acls(render: Render) -> None:
    users = _kinds(render(values_files=[EXAMPLE], namespace="kafka"), "KafkaUser")
    assert set(users) == {"molstream-worker", "molstream-operator", "molstream-fetcher"}
    for user in users.values():
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
        assert user["spec"]["authorization"]["type"] == "simple"
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == "my-cluster"
    topic = "topic"
    assert _acls(users["molstream-fetcher"]) == {
        (topic, f"chembl.{t}", op) for t in ("rows", "rejected", "events")
        for op in ("Write", "Describe")}
    assert _acls(users["molstream-worker"]) == {
        (topic, "chembl.rows", "Read"), (topic, "chembl.rows", "Describe"),
        *((topic, f"chembl.{t}", op)
          for t in ("rejected", "events") for op in ("Write", "Describe")),
        ("group", "chembl-worker", "Read"),
    }
    assert _acls(users["molstream-operator"]) == {
        (topic, "chembl.events", "Read"), (topic, "chembl.events", "Describe"),
        ("group", "chembl-operator", "Read"),
    }


def test_example_each_pod_its_own_user(render: Render, tmp_path: Path) -> None:
    objects = render(values_files=[EXAMPLE], namespace="kafka")
    pods = {
        "worker": pod_spec(find(objects, "Deployment", "molstream-worker")),
        "operator": pod_spec(find(objects, "Deployment", "molstream-operator")),
        "fetcher": pod_spec(operator_built_job(objects, tmp_path, SPEC, namespace="kafka")),
        "test": pod_spec(find(objects, "Pod", "molstream-test")),
    }
    for component, spec in pods.items():
        user = f"molstream-{'worker' if component == 'test' else component}"
        env = env_of(spec["containers"][0])
        assert env["MOLSTREAM_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", component
        assert env["MOLSTREAM_KAFKA_SASL_USERNAME"] == user, component
        assert env["MOLSTREAM_KAFKA_SASL_PASSWORD_FILE"] == "/etc/molstream/kafka-sasl/password"
        volumes = _secret_volumes(spec)
        assert volumes["kafka-sasl"] == (user, ["password"]), component
        assert volumes["kafka-ca"] == ("my-cluster-cluster-ca-cert", ["ca.crt"]), component
        assert "kafka-user" not in volumes, component
    worker = env_of(pods["worker"]["containers"][0])
    assert worker["MOLSTREAM_CREATE_TOPICS"] == "false"
    assert worker["MOLSTREAM_DATABASE_URL"] == {
        "secretKeyRef": {"name": "molstream-pg-app", "key": "uri"}}
    assert worker["PGSSLMODE"] == "verify-full"
    assert _secret_volumes(pods["worker"])["db-ca"] == ("molstream-pg-ca", ["ca.crt"])
    assert env_of(pods["fetcher"]["containers"][0])["MOLSTREAM_CREATE_TOPICS"] == "false"
    # The chart's topics Job does not run: the KafkaTopics create the topics.
    assert not [o for o in objects if o["kind"] == "Job"]


def test_mtls_users(render: Render, tmp_path: Path) -> None:
    objects = render(set=MTLS)
    users = _kinds(objects, "KafkaUser")
    assert {u["spec"]["authentication"]["type"] for u in users.values()} == {"tls"}
    for component in ("worker", "operator"):
        spec = pod_spec(find(objects, "Deployment", f"molstream-{component}"))
        env = env_of(spec["containers"][0])
        assert env["MOLSTREAM_KAFKA_CERT_FILE"] == "/etc/molstream/kafka-user/user.crt"
        assert env["MOLSTREAM_KAFKA_KEY_FILE"] == "/etc/molstream/kafka-user/user.key"
        assert not [k for k in env if "SASL" in k]
        assert _secret_volumes(spec)["kafka-user"] == (
            f"molstream-{component}", ["user.crt", "user.key"])
    fetcher = pod_spec(operator_built_job(objects, tmp_path, SPEC))
    assert _secret_volumes(fetcher)["kafka-user"] == ("molstream-fetcher", ["user.crt", "user.key"])


def test_components_create_topics_only_when_nothing_else_does(render: Render) -> None:
    """Strimzi users without KafkaTopics and without the topics Job: the worker and the
    fetcher create missing topics, so they (only they) may Create."""
    objects = render(set={**MTLS, "global.kafka.strimzi.topics": "false"})
    assert not _kinds(objects, "KafkaTopic")
    users = _kinds(objects, "KafkaUser")
    prefix = "molstream.molstream"
    for name in ("molstream-worker", "molstream-fetcher"):
        assert {n for t, n, op in _acls(users[name]) if op == "Create"} == {
            f"{prefix}.rows", f"{prefix}.rejected", f"{prefix}.events"}, name
        # More partitions for a grown rowsPartitions (ensure_topics) need Alter on the rows.
        assert {n for t, n, op in _acls(users[name]) if op == "Alter"} == {f"{prefix}.rows"}
    assert not [op for _, _, op in _acls(users["molstream-operator"])
                if op in {"Create", "Alter"}]
    worker = env_of(pod_spec(find(objects, "Deployment", "molstream-worker"))["containers"][0])
    assert worker["MOLSTREAM_CREATE_TOPICS"] == "true"


def test_kafka_ui_user(render: Render) -> None:
    objects = render(values_files=[EXAMPLE], namespace="kafka", set={
        "kafka-ui.enabled": "true", "kafka-ui.bootstrapServers": "my-cluster-kafka-bootstrap:9093"})
    user = find(objects, "KafkaUser", "molstream-kafka-ui-user")
    acls = _acls(user)
    assert not [a for a in acls if a[2] in {"Write", "Create", "Delete", "Alter", "All"}]
    assert ("topic", "chembl.rows", "Read") in acls
    env = env_of(pod_spec(find(objects, "Deployment", "molstream-kafka-ui"))["containers"][0])
    jaas = env["KAFKA_CLUSTERS_0_PROPERTIES_SASL_JAAS_CONFIG"]
    assert 'username="molstream-kafka-ui-user"' in jaas
    assert env["KAFKA_SASL_PASSWORD"] == {
        "secretKeyRef": {"name": "molstream-kafka-ui-user", "key": "password"}}


def test_secret_prefix(render: Render) -> None:
    objects = render(values_files=[EXAMPLE], namespace="kafka",
                     set={"global.kafka.strimzi.secretPrefix": "kafka-"})
    spec = pod_spec(find(objects, "Deployment", "molstream-worker"))
    assert _secret_volumes(spec)["kafka-sasl"] == ("kafka-molstream-worker", ["password"])
    assert env_of(spec["containers"][0])["MOLSTREAM_KAFKA_SASL_USERNAME"] == "molstream-worker"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"global.kafka.strimzi.clusterName": ""},
         "global.kafka.strimzi.enabled=true needs global.kafka.strimzi.clusterName"),
        ({"kafka.external.bootstrapServers": "", "global.kafka.strimzi.users": "false",
          "global.kafka.security.protocol": "PLAINTEXT",
          "global.kafka.security.tls.caSecret.name": ""},
         "global.kafka.strimzi.enabled=true needs kafka.external.bootstrapServers"),
        ({"kafka.topics.create": "true"},
         "global.kafka.strimzi.topics=true creates the topics as KafkaTopics: set "
         "kafka.topics.create=false"),
        ({"global.kafka.security.protocol": "PLAINTEXT",
          "global.kafka.security.tls.caSecret.name": ""},
         "global.kafka.strimzi.users=true needs global.kafka.security.protocol SASL_SSL"),
        ({"global.kafka.security.protocol": "SASL_SSL",
          "global.kafka.security.sasl.mechanism": "SCRAM-SHA-256"},
         "Strimzi's KafkaUsers (global.kafka.strimzi.users) authenticate with SCRAM-SHA-512 only"),
        ({"global.kafka.security.tls.clientSecret.name": "shared"},
         "global.kafka.strimzi.users=true gives each component its own KafkaUser and Secret"),
        ({"global.kafka.strimzi.topics": "false", "kafka.topics.create": "true"},
         "global.kafka.strimzi.users=true leaves the chart's topics Job (kafka.topics.create) "
         "without a Kafka user"),
        # Strimzi's TLS listeners present certificates of its own cluster CA.
        ({"global.kafka.security.tls.caSecret.name": ""},
         "global.kafka.strimzi.enabled=true with protocol SSL needs "
         "global.kafka.security.tls.caSecret.name: Strimzi's TLS listeners present certificates "
         "of its cluster CA"),
        ({"global.kafka.security.protocol": "SASL_SSL",
          "global.kafka.security.tls.caSecret.name": ""},
         "set it to my-cluster-cluster-ca-cert (key ca.crt)"),
    ],
    ids=["no-cluster", "no-bootstrap", "topics-twice", "users-plaintext", "users-scram-256",
         "users-and-shared-secret", "users-and-topics-job", "tls-without-ca",
         "sasl-ssl-without-ca"],
)
def test_refused(helm_offline: Helm, values: dict[str, str], message: str) -> None:
    assert message in refused(helm_offline, {**MTLS, **values})


@pytest.fixture(scope="module")
def example_release(helm: Tool, kubectl: Tool, ir_crd: str) -> Iterator[tuple[str, Any, str]]:
    """The example values installed (Strimzi's CRDs in the API server; hooks created apart):
    namespace, objects, and helm's output (NOTES.txt)."""
    thirdparty_crds.install(kubectl)
    namespace = f"strimzi-cnpg-{secrets.token_hex(3)}"
    kubectl("create", "namespace", namespace)
    installed = helm("install", "molstream", CHART, "--namespace", namespace, "--no-hooks",
                     *INSTALL_ARGS, "--values", EXAMPLE, timeout=180)
    manifest = parse(helm("get", "manifest", "molstream", "--namespace", namespace).stdout)
    hooks = parse(helm("get", "hooks", "molstream", "--namespace", namespace).stdout)
    hooks.sort(key=lambda o: 0 if o["kind"] in {"ServiceAccount", "ConfigMap", "Secret"} else 1)
    kubectl("create", "-f", "-", namespace=namespace, input=yaml.safe_dump_all(hooks))
    yield namespace, manifest + hooks, installed.stdout
    helm("uninstall", "molstream", "--namespace", namespace, check=False)
    kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_example_installs(kubectl: Tool, example_release: Any) -> None:
    namespace, objects, notes = example_release
    assert "SASL_SSL, one Strimzi KafkaUser per component" in notes
    kinds = {o["kind"] for o in objects}
    assert {"KafkaTopic", "KafkaUser", "Deployment"} <= kinds
    for obj in objects:
        kubectl("get", f"{obj['kind']}/{obj['metadata']['name']}", "--output=name",
                namespace=namespace)
    stored = yaml.safe_load(kubectl("get", "kafkatopic/molstream-rows", "--output=yaml",
                                    namespace=namespace).stdout)
    assert stored["spec"]["topicName"] == "chembl.rows"


def test_mtls_users_accepted(kubectl: Tool, example_release: Any, render: Render) -> None:
    namespace, *_ = example_release
    for user in _kinds(render(set=MTLS), "KafkaUser").values():
        user["metadata"]["name"] += "-tls"
        result = thirdparty_crds.dry_run(kubectl, namespace, user)
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("kind", "change", "message"),
    [
        ("KafkaUser", lambda o: o["spec"]["authorization"]["acls"][0]["operations"].append(
            "Produce"), 'Unsupported value: "Produce"'),
        ("KafkaUser", lambda o: o["spec"]["authentication"].update(type="scram-sha-256"),
         'Unsupported value: "scram-sha-256"'),
        ("KafkaTopic", lambda o: o["spec"].update(partitions=0), "spec.partitions"),
    ],
    ids=["acl-operation", "authentication", "partitions"],
)
def test_schema_refuses_a_wrong_field(kubectl: Tool, example_release: Any, kind: str,
                                      change: Any, message: str) -> None:
    """The API server checks these objects against Strimzi's schema: a wrong field fails."""
    namespace, objects, _ = example_release
    obj = copy.deepcopy(next(o for o in objects if o["kind"] == kind))
    obj["metadata"]["name"] += "-wrong"
    assert thirdparty_crds.dry_run(kubectl, namespace, obj).returncode == 0
    change(obj)
    result = thirdparty_crds.dry_run(kubectl, namespace, obj)
    assert result.returncode != 0
    assert message in result.stderr


# --- The ACLs against a real Kafka authorizer --------------------------------------------------

_OPERATIONS = {"Read": "READ", "Write": "WRITE", "Create": "CREATE", "Alter": "ALTER",
               "Describe": "DESCRIBE", "DescribeConfigs": "DESCRIBE_CONFIGS"}


@pytest.fixture(scope="module")
def secured_kafka() -> Iterator[Any]:
    """A broker secured as Strimzi runs one: SASL_SSL with SCRAM-SHA-512, certificates of the
    test CA, an authorizer that denies what no ACL allows."""
    from molstream_dev._process import ServiceError
    from molstream_dev.kafka_secured import SecuredKafkaServer

    try:
        kafka = SecuredKafkaServer().start()
    except ServiceError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield kafka
    finally:
        kafka.close()


def _provision(kafka: Any, objects: list[dict[str, Any]], directory: Path,
               fullname: str = "molstream") -> dict[str, dict[str, Any]]:
    """The users the rendered KafkaUsers declare, with exactly their ACLs, and the topics of
    the KafkaTopics (if any) created as Strimzi's Topic Operator would; then each component's
    client settings from its rendered environment, its Secret files written where the
    variables point."""
    from kafka import KafkaAdminClient
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        NewTopic,
        ResourcePattern,
        ResourceType,
        UserScramCredentialUpsertion,
    )

    admin = KafkaAdminClient(**kafka.admin_config(), client_id="acl-test")
    passwords = {}
    acls = []
    for user in _kinds(objects, "KafkaUser").values():
        name = user["metadata"]["name"]
        passwords[name] = secrets.token_urlsafe(12)
        for rule in user["spec"]["authorization"]["acls"]:
            resource = rule["resource"]
            pattern = ResourcePattern(
                ResourceType[resource["type"].upper()], resource.get("name", "kafka-cluster"),
                ACLResourcePatternType[resource.get("patternType", "literal").upper()])
            acls += [ACL(f"User:{name}", "*", ACLOperation[_OPERATIONS[op]],
                         ACLPermissionType.ALLOW, pattern) for op in rule["operations"]]
    try:
        admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(n, "SCRAM-SHA-512", p) for n, p in passwords.items()])
        assert not admin.create_acls(acls)["failed"]
        if topics := _kinds(objects, "KafkaTopic"):
            admin.create_topics([
                NewTopic(t["spec"]["topicName"], t["spec"]["partitions"], t["spec"]["replicas"],
                         topic_configs={k: str(v) for k, v in t["spec"].get("config", {}).items()})
                for t in topics.values()])
    finally:
        admin.close()

    clients = {}
    spec_of = {
        "worker": pod_spec(find(objects, "Deployment", f"{fullname}-worker")),
        "operator": pod_spec(find(objects, "Deployment", f"{fullname}-operator")),
        "fetcher": pod_spec(operator_built_job(objects, directory, SPEC, namespace="kafka")),
    }
    for component, spec in spec_of.items():
        env = {k: v for k, v in env_of(spec["containers"][0]).items() if isinstance(v, str)}
        files = directory / component
        files.mkdir()
        (files / "password").write_text(passwords[env["MOLSTREAM_KAFKA_SASL_USERNAME"]])
        env["MOLSTREAM_KAFKA_SASL_PASSWORD_FILE"] = str(files / "password")
        env["MOLSTREAM_KAFKA_CA_FILE"] = str(kafka.ca_file)
        clients[component] = {"bootstrap_servers": kafka.bootstrap,
                              **KafkaSecurity.from_env(env).client_kwargs(), "env": env}
    _wait_for_logins(clients)
    return clients


@pytest.fixture(scope="module")
def acl_kafka(secured_kafka: Any, tmp_path_factory: pytest.TempPathFactory,
              render: Render) -> dict[str, dict[str, Any]]:
    """The example's topics and users on the secured broker, and each component's client."""
    objects = render(values_files=[EXAMPLE], namespace="kafka", set={
        "global.topicPrefix": f"acl{secrets.token_hex(3)}",
        "kafka.topics.replicationFactor": "1", "kafka.topics.minInsyncReplicas": "1"})
    return _provision(secured_kafka, objects, tmp_path_factory.mktemp("acl"))


def _wait_for_logins(clients: dict[str, dict[str, Any]]) -> None:
    """The broker applies new SCRAM credentials a moment after the controller commits them."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + 60
    for settings in clients.values():
        kwargs = {k: v for k, v in settings.items() if k != "env"}
        while True:
            try:
                KafkaAdminClient(**kwargs, request_timeout_ms=5000).close()
                break
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def _kwargs(clients: dict[str, dict[str, Any]], component: str) -> dict[str, Any]:
    return {k: v for k, v in clients[component].items() if k != "env"}


def _produce(clients: dict[str, dict[str, Any]], component: str, topic: str) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(**_kwargs(clients, component), acks="all", max_block_ms=10_000,
                             request_timeout_ms=10_000, delivery_timeout_ms=20_000)
    try:
        producer.send(topic, key=b"k", value=component.encode()).get(timeout=30)
    finally:
        producer.close(timeout=5)


def _consume(clients: dict[str, dict[str, Any]], component: str, topic: str, group: str) -> bytes:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False, **_kwargs(clients, component))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                consumer.commit()
                return records[0].value
        raise AssertionError(f"{component}: nothing consumed from {topic} as {group}")
    finally:
        consumer.close(autocommit=False)


@pytest.mark.kafka
def test_acls_let_each_component_do_its_work(acl_kafka: dict[str, dict[str, Any]]) -> None:
    """Each component, as its own KafkaUser with the rendered ACLs, does what its code does:
    the fetcher publishes rows, rejections and events; the worker consumes the rows in its
    group and publishes rejections and events; the operator consumes the events in its group."""
    env = {c: acl_kafka[c]["env"] for c in acl_kafka}
    prefix = env["worker"]["MOLSTREAM_TOPIC_PREFIX"]
    topics = Topics(prefix=prefix)
    bootstrap = acl_kafka["worker"]["bootstrap_servers"]
    security = {c: KafkaSecurity.from_env(env[c]) for c in env}
    # The access probes the components run first (molstream.kafka_access), as they run them.
    check_access(bootstrap, security["fetcher"], topics=dict.fromkeys(
        (topics.rows, topics.rejected, topics.events), ("WRITE",)))
    check_access(bootstrap, security["worker"],
                 topics={topics.rows: ("READ",), topics.rejected: ("WRITE",),
                         topics.events: ("WRITE",)},
                 groups=[env["worker"]["MOLSTREAM_WORKER_GROUP"]])
    check_access(bootstrap, security["operator"], topics={topics.events: ("READ",)},
                 groups=[env["operator"]["MOLSTREAM_OPERATOR_GROUP_ID"]])
    # MOLSTREAM_CREATE_TOPICS=false: the topics are looked for, never created or altered.
    for component in ("fetcher", "worker"):
        assert env[component]["MOLSTREAM_CREATE_TOPICS"] == "false"
        ensure_topics(bootstrap, topics, rows_partitions=6, create=False, wait_s=30,
                      security=security[component])
    for topic in ("rows", "rejected", "events"):
        _produce(acl_kafka, "fetcher", f"{prefix}.{topic}")
    assert _consume(acl_kafka, "worker", f"{prefix}.rows",
                    env["worker"]["MOLSTREAM_WORKER_GROUP"]) == b"fetcher"
    for topic in ("rejected", "events"):
        _produce(acl_kafka, "worker", f"{prefix}.{topic}")
    assert _consume(acl_kafka, "operator", f"{prefix}.events",
                    env["operator"]["MOLSTREAM_OPERATOR_GROUP_ID"]) == b"fetcher"
    # The helm test Pod, as the worker's user, lists the three topics (templates/tests).
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**_kwargs(acl_kafka, "worker"))
    try:
        assert {topics.rows, topics.rejected, topics.events} <= set(admin.list_topics())
    finally:
        admin.close()


@pytest.mark.kafka
@pytest.mark.parametrize(
    ("component", "action"),
    [
        ("fetcher", ("consume", "rows", "worker-group")),
        ("operator", ("produce", "events")),
        ("worker", ("produce", "rows")),
        ("worker", ("consume", "rows", "other-group")),
    ],
    ids=["fetcher-reads-rows", "operator-writes-events", "worker-writes-rows",
         "worker-other-group"],
)
def test_acls_refuse_the_rest(acl_kafka: dict[str, dict[str, Any]], component: str,
                              action: tuple[str, ...]) -> None:
    from kafka.errors import KafkaError

    prefix = acl_kafka["worker"]["env"]["MOLSTREAM_TOPIC_PREFIX"]
    topic = f"{prefix}.{action[1]}"
    with pytest.raises(KafkaError) as refused:
        if action[0] == "produce":
            _produce(acl_kafka, component, topic)
        else:
            group = (acl_kafka["worker"]["env"]["MOLSTREAM_WORKER_GROUP"]
                     if action[2] == "worker-group" else f"{prefix}-other")
            _consume(acl_kafka, component, topic, group)
    # TopicAuthorizationFailed, GroupAuthorizationFailed, or for a producer with Write on no
    # topic at all ClusterAuthorizationFailed (its idempotent session needs Write somewhere).
    assert "AuthorizationFailed" in repr(refused.value), repr(refused.value)


@pytest.mark.kafka
def test_acls_let_components_create_and_grow_topics(secured_kafka: Any, render: Render,
                                                    tmp_path: Path) -> None:
    """No KafkaTopics and no topics Job: the worker and the fetcher create the topics (Create)
    and add rows partitions (Alter), as molstream.publish.ensure_topics does."""
    from kafka import KafkaAdminClient

    prefix = f"create{secrets.token_hex(3)}"
    objects = render(values_files=[EXAMPLE], namespace="kafka", release="ms2", set={
        "global.topicPrefix": prefix, "global.kafka.strimzi.topics": "false",
        "kafka.topics.replicationFactor": "1", "kafka.topics.minInsyncReplicas": "1"})
    assert not _kinds(objects, "KafkaTopic")
    clients = _provision(secured_kafka, objects, tmp_path, fullname="ms2-molstream")
    topics = Topics(prefix=prefix)
    for component, partitions in (("fetcher", 2), ("worker", 3)):
        env = clients[component]["env"]
        assert env["MOLSTREAM_CREATE_TOPICS"] == "true"
        ensure_topics(clients[component]["bootstrap_servers"], topics,
                      rows_partitions=partitions, create=True,
                      replication_factor=int(env["MOLSTREAM_TOPIC_REPLICATION_FACTOR"]),
                      min_insync_replicas=int(env["MOLSTREAM_TOPIC_MIN_INSYNC_REPLICAS"]),
                      security=KafkaSecurity.from_env(env))
    admin = KafkaAdminClient(**secured_kafka.admin_config(), client_id="acl-test")
    try:
        described = {d["name"]: d for d in admin.describe_topics(
            [topics.rows, topics.rejected, topics.events])}
    finally:
        admin.close()
    assert len(described[topics.rows]["partitions"]) == 3
    assert len(described[topics.events]["partitions"]) == 1
    # The operator may do neither.
    with pytest.raises(Exception, match="(?i)authoriz|denies|refused"):
        ensure_topics(clients["operator"]["bootstrap_servers"], Topics(prefix=prefix + "x"),
                      create=True, security=KafkaSecurity.from_env(clients["operator"]["env"]))
