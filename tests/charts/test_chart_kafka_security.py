"""Kafka client security (global.kafka.security) and PostgreSQL TLS (database.tls) as the chart
renders them: every Pod that talks to Kafka (worker, operator, the fetcher Job the operator
builds from the fetcher template, Kafka UI, the helm test) gets the MOLSTREAM_KAFKA_* variables
pointing at files, and the Secrets as files (items, mode 0440, readable through fsGroup), never
as environment values; inconsistent values fail the render with one message naming the value.
The secured release is then installed into the real API server, and the fetcher Job the
operator builds is created there (server-side dry run)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
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
    operator_built_job,
    parse,
    pod_spec,
    refused,
)
from molstream_dev.pytest_kube import Tool

EXTERNAL = {"kafka.external.bootstrapServers": "my-cluster-kafka-bootstrap:9093"}
SASL_SSL = {
    **EXTERNAL,
    "global.kafka.security.protocol": "SASL_SSL",
    "global.kafka.security.sasl.username": "molstream",
    "global.kafka.security.sasl.passwordSecret.name": "molstream-kafka",
    "global.kafka.security.tls.caSecret.name": "my-cluster-cluster-ca-cert",
}
MTLS = {
    **EXTERNAL,
    "global.kafka.security.protocol": "SSL",
    "global.kafka.security.tls.caSecret.name": "my-cluster-cluster-ca-cert",
    "global.kafka.security.tls.clientSecret.name": "molstream-user",
}
SPEC = {"url": "https://ftp.example.org/chembl/activities.csv.gz"}


def _kafka_pods(objects: list[dict[str, Any]], tmp_path: Path) -> dict[str, dict[str, Any]]:
    """The Pod specs that talk to Kafka: worker, operator, the operator-built fetcher, test."""
    return {
        "worker": pod_spec(find(objects, "Deployment", "molstream-worker")),
        "operator": pod_spec(find(objects, "Deployment", "molstream-operator")),
        "fetcher": pod_spec(operator_built_job(objects, tmp_path, SPEC)),
        "test": pod_spec(find(objects, "Pod", "molstream-test")),
    }


def _files(spec: dict[str, Any]) -> dict[str, tuple[str, str, int]]:
    """mount path/file → (Secret, key, mode) for every Secret volume with items."""
    container = spec["containers"][0]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    files = {}
    for mount in container.get("volumeMounts", []):
        secret = volumes[mount["name"]].get("secret")
        if secret is None:
            continue
        assert mount.get("readOnly") is True
        for item in secret["items"]:
            files[f"{mount['mountPath']}/{item['path']}"] = (
                secret["secretName"], item["key"], secret["defaultMode"])
    return files


def test_plaintext_by_default(render: Render, tmp_path: Path) -> None:
    objects = render()
    for name, spec in _kafka_pods(objects, tmp_path).items():
        env = env_of(spec["containers"][0])
        assert not [k for k in env if k.startswith("MOLSTREAM_KAFKA_") and k != (
            "MOLSTREAM_KAFKA_BOOTSTRAP")], name
        assert not [v for v in spec["volumes"] if v["name"].startswith("kafka-")], name


def test_sasl_ssl_in_every_pod(render: Render, tmp_path: Path) -> None:
    objects = render(set=SASL_SSL)
    for name, spec in _kafka_pods(objects, tmp_path).items():
        env = env_of(spec["containers"][0])
        assert env["MOLSTREAM_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", name
        assert env["MOLSTREAM_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512", name
        assert env["MOLSTREAM_KAFKA_SASL_USERNAME"] == "molstream", name
        assert env["MOLSTREAM_KAFKA_SASL_PASSWORD_FILE"] == "/etc/molstream/kafka-sasl/password"
        assert env["MOLSTREAM_KAFKA_CA_FILE"] == "/etc/molstream/kafka-ca/ca.crt", name
        assert env["MOLSTREAM_KAFKA_CHECK_HOSTNAME"] == "true", name
        assert "MOLSTREAM_KAFKA_SASL_PASSWORD" not in env, name
        assert "MOLSTREAM_KAFKA_CERT_FILE" not in env, name
        # Each file the variables name is exactly one Secret key, group-readable (fsGroup).
        assert _files(spec) == {
            "/etc/molstream/kafka-sasl/password": ("molstream-kafka", "password", 0o440),
            "/etc/molstream/kafka-ca/ca.crt": ("my-cluster-cluster-ca-cert", "ca.crt", 0o440),
        }, name
        assert spec["securityContext"]["fsGroup"] == 10001
        assert spec["securityContext"]["runAsUser"] == 10001
        # No Secret reaches the environment (the fetcher's source credentials are not set here).
        assert not [k for k, v in env.items() if isinstance(v, dict) and "secretKeyRef" in v
                    and "KAFKA" in k], name


def test_mtls_in_every_pod(render: Render, tmp_path: Path) -> None:
    objects = render(set={**MTLS, "global.kafka.security.tls.checkHostname": "false"})
    for name, spec in _kafka_pods(objects, tmp_path).items():
        env = env_of(spec["containers"][0])
        assert env["MOLSTREAM_KAFKA_SECURITY_PROTOCOL"] == "SSL", name
        assert env["MOLSTREAM_KAFKA_CERT_FILE"] == "/etc/molstream/kafka-user/user.crt", name
        assert env["MOLSTREAM_KAFKA_KEY_FILE"] == "/etc/molstream/kafka-user/user.key", name
        assert env["MOLSTREAM_KAFKA_CHECK_HOSTNAME"] == "false", name
        assert not [k for k in env if k.startswith("MOLSTREAM_KAFKA_SASL")], name
        assert _files(spec) == {
            "/etc/molstream/kafka-ca/ca.crt": ("my-cluster-cluster-ca-cert", "ca.crt", 0o440),
            "/etc/molstream/kafka-user/user.crt": ("molstream-user", "user.crt", 0o440),
            "/etc/molstream/kafka-user/user.key": ("molstream-user", "user.key", 0o440),
        }, name


def test_tls_without_ca_uses_system_cas(render: Render, tmp_path: Path) -> None:
    objects = render(set={**EXTERNAL, "global.kafka.security.protocol": "SSL"})
    for name, spec in _kafka_pods(objects, tmp_path).items():
        env = env_of(spec["containers"][0])
        assert env["MOLSTREAM_KAFKA_SECURITY_PROTOCOL"] == "SSL", name
        assert "MOLSTREAM_KAFKA_CA_FILE" not in env, name
        assert _files(spec) == {}, name


def test_operator_template_mount_leaves_room_for_secrets(render: Render) -> None:
    """The fetcher template's ConfigMap has a directory of its own: the Kafka Secrets are
    mounted beside it, not inside a ConfigMap volume."""
    operator = pod_spec(find(render(set=SASL_SSL), "Deployment", "molstream-operator"))
    container = operator["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    template = env_of(container)["MOLSTREAM_FETCHER_TEMPLATE"]
    assert template.startswith(mounts["fetcher-template"] + "/")
    for name in ("kafka-sasl", "kafka-ca"):
        assert not mounts[name].startswith(mounts["fetcher-template"] + "/")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, {"MOLSTREAM_CREATE_TOPICS": "false"}),
        ({"kafka.topics.create": "false", "kafka.topics.replicationFactor": "3",
          "kafka.topics.minInsyncReplicas": "2"},
         {"MOLSTREAM_CREATE_TOPICS": "true", "MOLSTREAM_TOPIC_REPLICATION_FACTOR": "3",
          "MOLSTREAM_TOPIC_MIN_INSYNC_REPLICAS": "2"}),
    ],
    ids=["topics-job", "components-create"],
)
def test_topics_env(render: Render, tmp_path: Path, values: dict[str, str],
                    expected: dict[str, str]) -> None:
    objects = render(set={**EXTERNAL, **values})
    pods = _kafka_pods(objects, tmp_path)
    for name in ("worker", "fetcher"):
        env = env_of(pods[name]["containers"][0])
        got = {k: v for k, v in env.items() if k.startswith("MOLSTREAM_CREATE_TOPICS")
               or k.startswith("MOLSTREAM_TOPIC_")}
        got.pop("MOLSTREAM_TOPIC_PREFIX")
        assert got == expected, name


def test_kafka_ui_sasl_ssl(render: Render) -> None:
    objects = render(set={**SASL_SSL, "kafka-ui.enabled": "true",
                          "kafka-ui.bootstrapServers": EXTERNAL["kafka.external.bootstrapServers"]})
    spec = pod_spec(find(objects, "Deployment", "molstream-kafka-ui"))
    env = env_of(spec["containers"][0])
    names = [e["name"] for e in spec["containers"][0]["env"]]
    assert env["KAFKA_CLUSTERS_0_PROPERTIES_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["KAFKA_CLUSTERS_0_PROPERTIES_SASL_MECHANISM"] == "SCRAM-SHA-512"
    # The kubelet expands $(KAFKA_SASL_PASSWORD), defined before, from the Secret.
    assert env["KAFKA_CLUSTERS_0_PROPERTIES_SASL_JAAS_CONFIG"] == (
        'org.apache.kafka.common.security.scram.ScramLoginModule required '
        'username="molstream" password="$(KAFKA_SASL_PASSWORD)";')
    assert env["KAFKA_SASL_PASSWORD"] == {
        "secretKeyRef": {"name": "molstream-kafka", "key": "password"}}
    assert names.index("KAFKA_SASL_PASSWORD") < names.index(
        "KAFKA_CLUSTERS_0_PROPERTIES_SASL_JAAS_CONFIG")
    assert env["KAFKA_CLUSTERS_0_PROPERTIES_SSL_TRUSTSTORE_TYPE"] == "PEM"
    assert env["KAFKA_CLUSTERS_0_PROPERTIES_SSL_TRUSTSTORE_LOCATION"] == (
        "/etc/kafka-ui/kafka-ca/ca.crt")
    assert _files(spec) == {
        "/etc/kafka-ui/kafka-ca/ca.crt": ("my-cluster-cluster-ca-cert", "ca.crt", 0o440)}


def test_kafka_ui_mtls(render: Render) -> None:
    objects = render(set={**MTLS, "global.kafka.security.tls.checkHostname": "false",
                          "kafka-ui.enabled": "true",
                          "kafka-ui.bootstrapServers": EXTERNAL["kafka.external.bootstrapServers"]})
    env = env_of(pod_spec(find(objects, "Deployment", "molstream-kafka-ui"))["containers"][0])
    assert env["KAFKA_CLUSTERS_0_PROPERTIES_SECURITY_PROTOCOL"] == "SSL"
    assert env["KAFKA_CLUSTERS_0_PROPERTIES_SSL_KEYSTORE_TYPE"] == "PEM"
    assert env["KAFKA_CLUSTERS_0_PROPERTIES_SSL_KEYSTORE_CERTIFICATE_CHAIN"] == {
        "secretKeyRef": {"name": "molstream-user", "key": "user.crt"}}
    assert env["KAFKA_CLUSTERS_0_PROPERTIES_SSL_KEYSTORE_KEY"] == {
        "secretKeyRef": {"name": "molstream-user", "key": "user.key"}}
    assert env["KAFKA_CLUSTERS_0_PROPERTIES_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM"] == ""
    assert not [k for k in env if "SASL" in k]


def test_database_tls_cloudnativepg(render: Render) -> None:
    """CloudNativePG: the URL from <cluster>-app (key uri), the CA from <cluster>-ca (only
    ca.crt: the Secret also holds the CA's private key), sslmode verify-full."""
    objects = render(set={"database.existingSecret": "pg-app", "database.existingSecretKey": "uri",
                          "database.tls.caSecret.name": "pg-ca"})
    spec = pod_spec(find(objects, "Deployment", "molstream-worker"))
    env = env_of(spec["containers"][0])
    assert env["MOLSTREAM_DATABASE_URL"] == {"secretKeyRef": {"name": "pg-app", "key": "uri"}}
    assert env["PGSSLMODE"] == "verify-full"
    assert env["PGSSLROOTCERT"] == "/etc/molstream/db-ca/ca.crt"
    assert _files(spec) == {"/etc/molstream/db-ca/ca.crt": ("pg-ca", "ca.crt", 0o440)}
    # The operator does not touch the database.
    operator = env_of(pod_spec(find(objects, "Deployment", "molstream-operator"))["containers"][0])
    assert "PGSSLMODE" not in operator


def test_database_tls_mode_without_ca(render: Render) -> None:
    objects = render(set={"database.url": "postgresql+psycopg://u:p@db/molstream",
                          "database.tls.mode": "require"})
    env = env_of(pod_spec(find(objects, "Deployment", "molstream-worker"))["containers"][0])
    assert env["PGSSLMODE"] == "require"
    assert "PGSSLROOTCERT" not in env


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"global.kafka.security.protocol": "SASL_SSL",
          "global.kafka.security.sasl.passwordSecret.name": "s"},
         "global.kafka.security.protocol=SASL_SSL needs global.kafka.security.sasl.username"),
        ({"global.kafka.security.protocol": "SASL_PLAINTEXT",
          "global.kafka.security.sasl.username": "u"},
         "global.kafka.security.protocol=SASL_PLAINTEXT needs "
         "global.kafka.security.sasl.passwordSecret.name"),
        ({"global.kafka.security.protocol": "SSL", "global.kafka.security.sasl.username": "u"},
         "global.kafka.security.sasl is set but protocol SSL uses no SASL"),
        ({"global.kafka.security.tls.caSecret.name": "ca"},
         "global.kafka.security.tls.caSecret is set but protocol PLAINTEXT uses no TLS"),
        ({"global.kafka.security.protocol": "SASL_PLAINTEXT",
          "global.kafka.security.sasl.username": "u",
          "global.kafka.security.sasl.passwordSecret.name": "s",
          "global.kafka.security.tls.clientSecret.name": "c"},
         "global.kafka.security.tls.clientSecret (mTLS) needs TLS, not protocol SASL_PLAINTEXT"),
        # The schema's own message, naming the value by its path.
        ({"global.kafka.security.protocol": "TLS"}, "/global/kafka/security/protocol"),
        ({"global.kafka.security.protocol": "SASL_SSL", "global.kafka.security.sasl.username": "u",
          "global.kafka.security.sasl.passwordSecret.name": "s",
          "global.kafka.security.sasl.mechanism": "GSSAPI"},
         "/global/kafka/security/sasl/mechanism"),
        ({"database.tls.caSecret.name": "pg-ca"},
         "database.tls is set but the database is SQLite"),
        ({"database.url": "postgresql+psycopg://u:p@db/m", "database.tls.mode": "verify-full"},
         "database.tls.mode=verify-full needs database.tls.caSecret.name"),
    ],
    ids=["sasl-no-username", "sasl-no-password", "sasl-without-sasl-protocol",
         "ca-without-tls", "mtls-without-tls", "unknown-protocol", "unknown-mechanism",
         "db-tls-sqlite", "verify-full-without-ca"],
)
def test_refused(helm_offline: Helm, values: dict[str, str], message: str) -> None:
    stderr = refused(helm_offline, {**EXTERNAL, **values})
    assert message in stderr
    assert len([line for line in stderr.splitlines() if line.strip()]) <= 3, stderr


@pytest.fixture(scope="module")
def secured_release(helm: Tool, kubectl: Tool, ir_crd: str) -> Iterator[tuple[str, Any]]:
    """The SASL_SSL + PostgreSQL-over-TLS release, installed (hooks created separately: no
    controller runs them)."""
    namespace = f"kafka-security-{secrets.token_hex(3)}"
    kubectl("create", "namespace", namespace)
    args = [f"{k}={v}" for k, v in {**SASL_SSL, "database.existingSecret": "pg-app",
                                    "database.existingSecretKey": "uri",
                                    "database.tls.caSecret.name": "pg-ca",
                                    "worker.replicas": "1"}.items()]
    helm("install", "molstream", CHART, "--namespace", namespace, "--no-hooks", *INSTALL_ARGS,
         *(a for arg in args for a in ("--set", arg)), timeout=180)
    manifest = parse(helm("get", "manifest", "molstream", "--namespace", namespace).stdout)
    hooks = parse(helm("get", "hooks", "molstream", "--namespace", namespace).stdout)
    hooks.sort(key=lambda o: 0 if o["kind"] in {"ServiceAccount", "ConfigMap", "Secret"} else 1)
    kubectl("create", "-f", "-", namespace=namespace, input=yaml.safe_dump_all(hooks))
    yield namespace, manifest + hooks
    helm("uninstall", "molstream", "--namespace", namespace, check=False)
    kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_secured_release_installs(kubectl: Tool, secured_release: Any, tmp_path: Path) -> None:
    namespace, objects = secured_release
    for obj in objects:
        ref = f"{obj['kind']}/{obj['metadata']['name']}"
        kubectl("get", ref, "--output=name", namespace=namespace)
    stored = yaml.safe_load(kubectl("get", "deployment/molstream-worker", "--output=yaml",
                                    namespace=namespace).stdout)
    assert {v["name"] for v in pod_spec(stored)["volumes"]} >= {"kafka-sasl", "kafka-ca", "db-ca"}
    # The fetcher Job the operator builds from this release's template is valid as well.
    job = operator_built_job(objects, tmp_path, SPEC, namespace=namespace)
    result = kubectl("create", "--dry-run=server", "-f", "-", namespace=namespace,
                     input=yaml.safe_dump(job), check=False)
    assert result.returncode == 0, result.stderr


# --- Kafka UI's client settings, with Apache Kafka's own Java client ---------------------------

_UI_PREFIX = "KAFKA_CLUSTERS_0_PROPERTIES_"


def _ui_properties(container: dict[str, Any], secret_data: dict[tuple[str, str], str]) -> str:
    """The Java client properties kafbat/kafka-ui builds from its environment (Spring binds
    KAFKA_CLUSTERS_0_PROPERTIES_SASL_JAAS_CONFIG to the key sasl.jaas.config), with the
    kubelet's work done: secretKeyRef values read, $(VAR) references expanded."""
    values: dict[str, str] = {}
    for entry in container["env"]:
        if "valueFrom" in entry:
            ref = entry["valueFrom"]["secretKeyRef"]
            values[entry["name"]] = secret_data.get((ref["name"], ref["key"]), "(login)")
        else:
            value = entry["value"]
            for name, known in values.items():
                value = value.replace(f"$({name})", known)
            values[entry["name"]] = value
    lines = []
    for name, value in values.items():
        if name.startswith(_UI_PREFIX):
            key = name[len(_UI_PREFIX):].lower().replace("_", ".")
            escaped = value.replace("\\", "\\\\").replace("\n", "\\n")
            lines.append(f"{key}={escaped}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def secured_kafka() -> Iterator[Any]:
    """The secured test broker (SASL_SSL with SCRAM, mTLS, an authorizer)."""
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


def _java_client_connects(properties: str, bootstrap: str, tmp_path: Path) -> Any:
    """Apache Kafka's BrokerApiVersionsCommand (a Java AdminClient: TLS, SASL, mTLS as the
    properties say) against the broker: the CompletedProcess."""
    import subprocess

    from molstream_dev._process import require
    from molstream_dev.kafka import libs_dir

    config = tmp_path / "client.properties"
    config.write_text(properties)
    return subprocess.run(
        [require("java"), "-Xmx256m", "-cp", f"{libs_dir()}/*",
         "-Dlog4j.configuration=file:/dev/null", "kafka.admin.BrokerApiVersionsCommand",
         "--bootstrap-server", bootstrap, "--command-config", str(config)],
        capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.kafka
@pytest.mark.parametrize("mtls", [False, True], ids=["sasl-ssl", "mtls"])
def test_kafka_ui_settings_work_with_the_java_client(render: Render, secured_kafka: Any,
                                                     tmp_path: Path, mtls: bool) -> None:
    """The properties the chart gives Kafka UI (PEM truststore file; SCRAM JAAS line; PEM
    client certificate and key as values) let Apache Kafka's Java client in, as Kafka UI
    would be; a wrong password is refused (the check can fail)."""
    kafka = secured_kafka
    values = MTLS if mtls else {**SASL_SSL, "global.kafka.security.sasl.passwordSecret.name":
                                "ui-user"}
    objects = render(set={**values, "kafka-ui.enabled": "true",
                          "kafka-ui.bootstrapServers": "127.0.0.1:1",
                          "global.kafka.security.sasl.username": "" if mtls else "molstream"})
    spec = pod_spec(find(objects, "Deployment", "molstream-kafka-ui"))
    # The CA file, mounted where the truststore location points, is the test CA here.
    (ca_path,) = [p for p in _files(spec) if p.endswith("ca.crt")]
    secret_data = {
        ("ui-user", "password"): kafka.users["molstream"].password,
        ("molstream-user", "user.crt"): kafka.mtls_cert.read_text(),
        ("molstream-user", "user.key"): kafka.mtls_key.read_text(),
    }
    properties = _ui_properties(spec["containers"][0], secret_data)
    assert f"ssl.truststore.location={ca_path}" in properties
    properties = properties.replace(ca_path, str(kafka.ca_file))
    bootstrap = kafka.ssl_bootstrap if mtls else kafka.bootstrap
    result = _java_client_connects(properties, bootstrap, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert bootstrap.split(":")[1] in result.stdout
    if not mtls:
        secret_data[("ui-user", "password")] = "wrong"
        wrong = _java_client_connects(_ui_properties(spec["containers"][0], secret_data).replace(
            ca_path, str(kafka.ca_file)), bootstrap, tmp_path)
        assert wrong.returncode != 0, wrong.stdout[-500:]
        assert "Authentication failed" in wrong.stdout + wrong.stderr


@pytest.mark.kafka
def test_helm_test_pod_checks_a_secured_kafka(render: Render, secured_kafka: Any,
                                              tmp_path: Path) -> None:
    """`helm test`'s script, with the environment the chart gives its Pod (files where the
    variables point), finds molstream's topics on the secured broker as the release's user."""
    import subprocess
    import sys

    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from molstream_dev.kafka_secured import TOPIC_PREFIX

    kafka = secured_kafka
    prefix = f"{TOPIC_PREFIX}.helmtest{secrets.token_hex(3)}"  # under the user's ACLs
    objects = render(set={**SASL_SSL, "global.topicPrefix": prefix})
    pod = find(objects, "Pod", "molstream-test")
    script = tmp_path / "check_stack.py"
    script.write_text(find(objects, "ConfigMap", "molstream-test")["data"]["check_stack.py"])
    env = {k: v for k, v in env_of(pod["spec"]["containers"][0]).items() if isinstance(v, str)}
    (tmp_path / "password").write_text(kafka.users["molstream"].password)
    env.update(MOLSTREAM_KAFKA_SASL_PASSWORD_FILE=str(tmp_path / "password"),
               MOLSTREAM_KAFKA_CA_FILE=str(kafka.ca_file), KAFKA=kafka.bootstrap,
               TIMEOUT="60", REDIS_URL="", PATH="/usr/bin:/bin")
    admin = KafkaAdminClient(**kafka.admin_config(), client_id="helm-test-check")
    try:
        admin.create_topics([NewTopic(f"{prefix}.{t}", 1, 1)
                             for t in ("rows", "rejected", "events")])
    finally:
        admin.close()
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ok   kafka: {kafka.bootstrap} has the {prefix}.* topics" in result.stdout


# --- One Kafka user per component without Strimzi (<component>.kafkaUser) ----------------------

PER_COMPONENT = {
    **EXTERNAL,
    "kafka.topics.create": "false",  # the topics Job would connect as the shared user
    "global.kafka.security.protocol": "SASL_SSL",
    "global.kafka.security.tls.caSecret.name": "my-cluster-cluster-ca-cert",
    **{f"{c}.kafkaUser.{k}": f"ms-{c}" for c in ("worker", "operator", "fetcher")
       for k in ("username", "secretName")},
}


def test_own_user_per_component(render: Render, tmp_path: Path) -> None:
    objects = render(set={**PER_COMPONENT, "kafka-ui.enabled": "true",
                          "kafka-ui.bootstrapServers": EXTERNAL["kafka.external.bootstrapServers"],
                          "kafka-ui.kafkaUser.username": "ms-ui",
                          "kafka-ui.kafkaUser.secretName": "ms-ui"})
    for name, spec in _kafka_pods(objects, tmp_path).items():
        user = "ms-worker" if name == "test" else f"ms-{name}"
        assert env_of(spec["containers"][0])["MOLSTREAM_KAFKA_SASL_USERNAME"] == user, name
        assert _files(spec)["/etc/molstream/kafka-sasl/password"] == (user, "password", 0o440)
    ui = env_of(pod_spec(find(objects, "Deployment", "molstream-kafka-ui"))["containers"][0])
    assert 'username="ms-ui"' in ui["KAFKA_CLUSTERS_0_PROPERTIES_SASL_JAAS_CONFIG"]
    assert ui["KAFKA_SASL_PASSWORD"] == {"secretKeyRef": {"name": "ms-ui", "key": "password"}}


def test_own_mtls_user_over_the_shared_one(render: Render, tmp_path: Path) -> None:
    # An mTLS user is its certificate: secretName alone (the name is the certificate's).
    objects = render(set={**MTLS, "worker.kafkaUser.secretName": "ms-worker",
                          "fetcher.kafkaUser.secretName": "ms-fetcher"})
    pods = _kafka_pods(objects, tmp_path)
    assert _files(pods["worker"])["/etc/molstream/kafka-user/user.key"] == (
        "ms-worker", "user.key", 0o440)
    assert _files(pods["fetcher"])["/etc/molstream/kafka-user/user.key"] == (
        "ms-fetcher", "user.key", 0o440)
    assert _files(pods["operator"])["/etc/molstream/kafka-user/user.key"] == (
        "molstream-user", "user.key", 0o440)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"fetcher.kafkaUser.username": "", "fetcher.kafkaUser.secretName": ""},
         "global.kafka.security.protocol=SASL_SSL needs global.kafka.security.sasl.username "
         "for the fetcher: the shared user, or fetcher.kafkaUser"),
        # A name without its password (or a password without its name) would pair the
        # component's user with the shared password, or the shared user with another's.
        ({"operator.kafkaUser.secretName": ""},
         "operator.kafkaUser needs both username and secretName with protocol SASL_SSL: set "
         "operator.kafkaUser.secretName too"),
        ({"fetcher.kafkaUser.username": "",
          "global.kafka.security.sasl.username": "molstream",
          "global.kafka.security.sasl.passwordSecret.name": "molstream-kafka"},
         "fetcher.kafkaUser needs both username and secretName with protocol SASL_SSL: set "
         "fetcher.kafkaUser.username too"),
        # The fetcher (driven by users' URLs) never the one left with the shared credential.
        ({"fetcher.kafkaUser.username": "", "fetcher.kafkaUser.secretName": "",
          "global.kafka.security.sasl.username": "molstream",
          "global.kafka.security.sasl.passwordSecret.name": "molstream-kafka"},
         "fetcher.kafkaUser is empty while worker.kafkaUser is set: the fetcher Pods"),
        ({"global.kafka.security.protocol": "SSL",
          **{f"{c}.kafkaUser.username": "" for c in ("worker", "operator", "fetcher")},
          "fetcher.kafkaUser.secretName": "",
          "global.kafka.security.tls.clientSecret.name": "molstream-user"},
         "fetcher.kafkaUser is empty while worker.kafkaUser is set: the fetcher Pods"),
        # The bundled broker knows one SCRAM user: the shared one.
        ({"kafka.external.bootstrapServers": "",
          "kafka.listener.tls.secretName": "kafka-tls",
          "global.kafka.security.sasl.username": "molstream",
          "global.kafka.security.sasl.passwordSecret.name": "molstream-kafka"},
         "worker.kafkaUser is set but the bundled broker (kafka.external.bootstrapServers "
         "empty) knows only the shared user"),
        ({"kafka.topics.create": "true"},
         "needs global.kafka.security.sasl.username for the topics Job (kafka.topics.create)"),
        ({"global.kafka.security.protocol": "SSL"},
         "worker.kafkaUser.username is set but protocol SSL uses no SASL"),
        ({"global.kafka.strimzi.enabled": "true", "global.kafka.strimzi.clusterName": "c"},
         "global.kafka.strimzi.users=true gives each component its own KafkaUser and Secret: "
         "leave worker.kafkaUser empty"),
    ],
    ids=["fetcher-without-user", "operator-without-secret", "fetcher-username-alone",
         "fetcher-on-the-shared-user", "fetcher-on-the-shared-certificate",
         "own-users-on-the-bundled-broker", "topics-job-without-shared-user",
         "username-without-sasl", "with-strimzi-users"],
)
def test_own_users_refused(helm_offline: Helm, values: dict[str, str], message: str) -> None:
    assert message in refused(helm_offline, {**PER_COMPONENT, **values})


def test_a_username_alone_never_gets_the_shared_password(helm_offline: Helm) -> None:
    """fetcher.kafkaUser.username alone would send the fetcher's name with the shared (the
    worker's) password, mounted in the fetcher Pods; secretName alone the shared name with
    the fetcher's password."""
    for half in ({"fetcher.kafkaUser.username": "molstream-fetcher"},
                 {"fetcher.kafkaUser.secretName": "molstream-fetcher"}):
        stderr = refused(helm_offline, {**SASL_SSL, **half})
        assert "fetcher.kafkaUser needs both username and secretName with protocol SASL_SSL" in (
            stderr), stderr
