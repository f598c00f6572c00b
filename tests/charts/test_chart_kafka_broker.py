"""The kafka subchart rendered by helm: the bundled development broker's listener speaks
global.kafka.security.protocol and nothing else leaves the Pod, its certificate and SCRAM user
come from Secrets, the headless Service and the startupProbe; the topics Job connects with the
same security (also to an external Kafka), grows partitions and sets min.insync.replicas; and
what the chart refuses, naming the value."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from chartlib import CHART, Helm, Render, env_of, find, parse, pod_spec

SASL_SSL = {
    "global": {"kafka": {"security": {
        "protocol": "SASL_SSL",
        "sasl": {"mechanism": "SCRAM-SHA-512", "username": "molstream",
                 "passwordSecret": {"name": "kafka-user", "key": "pw"}},
        "tls": {"caSecret": {"name": "kafka-ca", "key": "ca.crt"}},
    }}},
    "kafka": {"listener": {"tls": {"secretName": "kafka-tls"}}},
}
MTLS = {
    "global": {"kafka": {"security": {
        "protocol": "SSL",
        "tls": {"caSecret": {"name": "kafka-ca"},
                "clientSecret": {"name": "kafka-client", "certKey": "c.pem", "keyKey": "k.pem"},
                "checkHostname": False},
    }}},
    "kafka": {"listener": {"tls": {"secretName": "kafka-tls"}}},
}


def _values(tmp_path: Path, values: dict[str, Any], name: str = "values.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values))
    return path


def _properties(objects: list[dict[str, Any]]) -> dict[str, str]:
    text = find(objects, "ConfigMap", "molstream-kafka")["data"]["server.properties"]
    return dict(line.split("=", 1) for line in text.splitlines()
                if line and not line.startswith("#"))


def _broker(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return pod_spec(find(objects, "StatefulSet", "molstream-kafka"))


def _topics(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return pod_spec(find(objects, "Job", "molstream-kafka-topics"))


def _mounts(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """mount path → the volume mounted there (the data volume's claim template: {})."""
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    return {m["mountPath"]: volumes.get(m["name"], {})
            for m in spec["containers"][0]["volumeMounts"]}


def _outside_listeners(props: dict[str, str]) -> list[str]:
    """The listeners not bound to loopback, as NAME:PROTOCOL."""
    protocols = dict(p.split(":") for p in props["listener.security.protocol.map"].split(","))
    names = [m.group(1) for m in re.finditer(r"(\w+)://([^:,]*):\d+", props["listeners"])
             if m.group(2) != "127.0.0.1"]
    return [f"{name}:{protocols[name]}" for name in names]


def _refused(helm: Helm, tmp_path: Path, values: dict[str, Any]) -> str:
    result = helm("template", "molstream", CHART, "--namespace", "molstream",
                  "--values", _values(tmp_path, values, "refused.yaml"), check=False)
    assert result.returncode != 0, "the chart rendered"
    return result.stderr


def test_plaintext_by_default_with_a_headless_service_and_a_startup_probe(render: Render) -> None:
    objects = render()
    props = _properties(objects)
    assert _outside_listeners(props) == ["PLAINTEXT:PLAINTEXT"]
    # Controller and inter-broker traffic never leave the Pod.
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["inter.broker.listener.name"] == "INTERNAL"
    assert "INTERNAL://127.0.0.1:9094" in props["advertised.listeners"]
    assert "authorizer.class.name" not in props

    headless = find(objects, "Service", "molstream-kafka-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    sts = find(objects, "StatefulSet", "molstream-kafka")
    assert sts["spec"]["serviceName"] == "molstream-kafka-headless"
    container = _broker(objects)["containers"][0]
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == 300  # startupSeconds
    assert "initialDelaySeconds" not in container["livenessProbe"]
    # The broker creates missing topics itself once it answers: the workers wait for them
    # to be ready, and helm --wait runs the post-install topics Job only then.
    post_start = container["lifecycle"]["postStart"]["exec"]["command"][-1]
    assert "--bootstrap-server 127.0.0.1:9094" in post_start
    assert 'grep -qx "$PREFIX.rows" /tmp/topics.list || create_rows' in post_start
    assert "kafka-configs.sh" not in post_start  # no SCRAM user
    assert env_of(container)["PREFIX"] == "molstream.molstream"
    assert find(objects, "Job", "molstream-kafka-topics")["metadata"]["annotations"][
        "helm.sh/hook"] == "post-install,post-upgrade"
    assert set(_mounts(_broker(objects))) == {"/var/lib/kafka/data", "/etc/molstream-kafka",
                                              "/tmp"}

    job = _topics(objects)
    assert set(_mounts(job)) == {"/tmp"}
    script = job["containers"][0]["args"][0]
    assert 'echo "security.protocol=$PROTOCOL"' in script
    assert env_of(job["containers"][0])["PROTOCOL"] == "PLAINTEXT"
    assert "sasl.jaas.config" not in script and "ssl." not in script


def test_sasl_ssl_only_with_the_certificate_and_scram_user_from_secrets(
        render: Render, tmp_path: Path) -> None:
    objects = render(values_files=[_values(tmp_path, SASL_SSL)])
    props = _properties(objects)
    assert _outside_listeners(props) == ["SASL_SSL:SASL_SSL"]
    assert props["advertised.listeners"].startswith(
        "SASL_SSL://molstream-kafka.molstream.svc:9092,")
    assert props["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required;")
    assert props["listener.name.sasl_ssl.ssl.keystore.type"] == "PEM"
    assert "listener.name.sasl_ssl.ssl.client.auth" not in props

    broker = _broker(objects)
    mounts = _mounts(broker)
    assert mounts["/etc/molstream-kafka-tls"]["secret"] == {"secretName": "kafka-tls"}
    assert mounts["/etc/molstream-kafka-sasl"]["secret"] == {
        "secretName": "kafka-user", "items": [{"key": "pw", "path": "password"}]}
    container = broker["containers"][0]
    env = env_of(container)
    assert (env["SASL_USERNAME"], env["SASL_MECHANISM"]) == ("molstream", "SCRAM-SHA-512")
    start = container["args"][0]
    assert "listener.name.sasl_ssl.ssl.keystore.key=" in start
    # The SCRAM credential goes into the storage's format on the first start only (the
    # Service publishes the broker before postStart has written it): on later starts the
    # password stays out of kafka-storage's command line.
    assert re.search(r'\[\[ -e /var/lib/kafka/data/kraft/meta\.properties \]\] \|\|\s+scram=\('
                     r'--add-scram ', start), start
    post_start = container["lifecycle"]["postStart"]["exec"]["command"][-1]
    assert "--bootstrap-server 127.0.0.1:9094" in post_start and "--entity-type users" in post_start
    # What kafka-configs says (its arguments, the password among them, may be in it) is
    # written for this container only, and redacted before its tail goes into the kubelet's
    # FailedPostStartHook event, which whoever may view the namespace reads.
    assert post_start.lstrip().startswith("umask 077\n"), post_start
    assert post_start.count("tail ") == 1 and post_start.count("show_log") >= 3, post_start
    assert ("tail -3 /tmp/poststart.log | sed -E 's/password=.*/password=<redacted>/' >&2"
            in post_start), post_start

    job = _topics(objects)
    jmounts = _mounts(job)
    assert jmounts["/etc/molstream/kafka-ca"]["secret"] == {
        "secretName": "kafka-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    assert jmounts["/etc/molstream/kafka-sasl"]["secret"]["secretName"] == "kafka-user"
    assert "/etc/molstream/kafka-user" not in jmounts
    jenv = env_of(job["containers"][0])
    assert (jenv["PROTOCOL"], jenv["SASL_USERNAME"]) == ("SASL_SSL", "molstream")
    script = job["containers"][0]["args"][0]
    assert "ssl.truststore.location=/etc/molstream/kafka-ca/ca.crt" in script
    assert "ScramLoginModule" in script and "$(</etc/molstream/kafka-sasl/password)" in script
    assert "ssl.endpoint.identification.algorithm" not in script  # hostnames checked

    # The password lives in its Secret only, read at start by the broker and the Job.
    assert "password" not in find(objects, "ConfigMap", "molstream-kafka")["data"][
        "server.properties"]


def test_ssl_with_client_certificates(render: Render, tmp_path: Path) -> None:
    objects = render(values_files=[_values(tmp_path, MTLS)])
    props = _properties(objects)
    assert _outside_listeners(props) == ["SSL:SSL"]
    assert props["listener.name.ssl.ssl.client.auth"] == "required"
    assert props["listener.name.ssl.ssl.truststore.location"] == "/etc/molstream-kafka-tls/ca.crt"
    post_start = _broker(objects)["containers"][0]["lifecycle"]["postStart"]["exec"]["command"]
    assert "kafka-configs.sh" not in post_start[-1]  # no SCRAM user

    job = _topics(objects)
    assert _mounts(job)["/etc/molstream/kafka-user"]["secret"] == {
        "secretName": "kafka-client",
        "items": [{"key": "c.pem", "path": "user.crt"}, {"key": "k.pem", "path": "user.key"}]}
    script = job["containers"][0]["args"][0]
    assert "ssl.keystore.type=PEM" in script and "ssl.keystore.key=" in script
    assert 'echo "ssl.endpoint.identification.algorithm=" >>"$cfg"' in script  # checkHostname
    assert "sasl." not in script


def test_topics_job_on_an_external_kafka_with_sasl_plain(render: Render, tmp_path: Path) -> None:
    values = {
        "global": {"kafka": {"security": {
            "protocol": "SASL_SSL",
            "sasl": {"mechanism": "PLAIN", "username": "ms",
                     "passwordSecret": {"name": "ms-user"}}}}},
        "kafka": {"external": {"bootstrapServers": "kafka.example:9093"}},
        "kafka-ui": {"bootstrapServers": "kafka.example:9093"},
    }
    objects = render(values_files=[_values(tmp_path, values)])
    assert not [o for o in objects if o["metadata"]["name"].startswith("molstream-kafka")
                and o["kind"] in ("StatefulSet", "ConfigMap", "Service")]
    job = _topics(objects)
    # Before the workers start, which wait for the topics (the external Kafka is there).
    assert find(objects, "Job", "molstream-kafka-topics")["metadata"]["annotations"][
        "helm.sh/hook"] == "pre-install,pre-upgrade"
    script = job["containers"][0]["args"][0]
    assert "PlainLoginModule" in script and "ssl.truststore" not in script  # the JVM's CAs
    assert env_of(job["containers"][0])["BOOTSTRAP"] == "kafka.example:9093"


def test_partitions_grow_and_min_insync_replicas(render: Render) -> None:
    script = _topics(render(set={"kafka.topics.rowsPartitions": 4, "worker.replicas": 1,
                                 "kafka.topics.minInsyncReplicas": 1}))["containers"][0]["args"][0]
    assert "partitions=4" in script
    assert 'topics --alter --topic "$PREFIX.rows" --partitions "$partitions"' in script
    assert script.count("--config min.insync.replicas=1") == 2  # rows; rejected and events
    assert 'configs "$PREFIX.$topic" "min.insync.replicas=1"' in script
    assert 'isr=",min.insync.replicas=1"' in script
    # Empty: the broker's default on new topics, existing ones left as they are.
    default = _topics(render())["containers"][0]["args"][0]
    assert "min.insync.replicas" not in default.replace('isr=\n', '')


def test_what_the_chart_refuses(helm_offline: Helm, tmp_path: Path) -> None:
    security = SASL_SSL["global"]["kafka"]["security"]

    def with_security(**changes: Any) -> dict[str, Any]:
        return {"global": {"kafka": {"security": {**security, **changes}}}}

    no_cert = _refused(helm_offline, tmp_path, with_security())
    assert "kafka.listener.tls.secretName is empty" in no_cert and "SASL_SSL" in no_cert
    plain = _refused(helm_offline, tmp_path, {
        **with_security(sasl={**security["sasl"], "mechanism": "PLAIN"}),
        "kafka": {"listener": {"tls": {"secretName": "t"}}}})
    assert "global.kafka.security.sasl.mechanism=PLAIN" in plain
    no_user = _refused(helm_offline, tmp_path, {
        **with_security(protocol="SASL_PLAINTEXT", sasl={"passwordSecret": {"name": "p"}})})
    assert "global.kafka.security.sasl.username" in no_user
    replicas = _refused(helm_offline, tmp_path, {"kafka": {"topics": {"replicationFactor": 3}}})
    assert "kafka.topics.replicationFactor=3" in replicas and "one node" in replicas
    isr = _refused(helm_offline, tmp_path, {"kafka": {"topics": {"minInsyncReplicas": 2}}})
    assert "kafka.topics.minInsyncReplicas=2 is more than kafka.topics.replicationFactor=1" in isr


def test_no_post_start_without_topics_or_sasl(render: Render) -> None:
    objects = render(set={"kafka.topics.create": "false"})
    assert "lifecycle" not in _broker(objects)["containers"][0]


def test_the_subchart_alone_renders_with_its_defaults(helm_offline: Helm) -> None:
    objects = parse(helm_offline("template", "molstream", CHART / "charts" / "kafka",
                                 "--namespace", "molstream").stdout)
    assert _outside_listeners(_properties(objects)) == ["PLAINTEXT:PLAINTEXT"]


def test_ssl_with_client_auth_needs_a_certificate_for_every_client(
        helm_offline: Helm, render: Render, tmp_path: Path) -> None:
    """The bundled broker's SSL listener with clientAuth required (the default) lets in only
    clients with a certificate: without one for each client the chart refuses."""
    security = {k: v for k, v in MTLS["global"]["kafka"]["security"].items()}
    no_cert = {**security, "tls": {"caSecret": {"name": "kafka-ca"}}}
    values = {"global": {"kafka": {"security": no_cert}}, "kafka": MTLS["kafka"]}
    stderr = _refused(helm_offline, tmp_path, values)
    assert ("kafka.listener.tls.clientAuth=required: the bundled broker's SSL listener lets in "
            "only clients with a certificate, and the worker has none") in stderr, stderr
    # Each component's own certificate, none shared: the topics Job still has none.
    own = {c: {"kafkaUser": {"secretName": f"ms-{c}"}} for c in ("worker", "operator", "fetcher")}
    stderr = _refused(helm_offline, tmp_path, {**values, **own})
    assert ("kafka.topics.create=true needs global.kafka.security.tls.clientSecret.name"
            in stderr), stderr
    # Without the topics Job, or with encryption only, the same values render.
    render(values_files=[_values(tmp_path, {**values, **own, "kafka": {
        **MTLS["kafka"], "topics": {"create": False}}})])
    objects = render(values_files=[_values(tmp_path, {**values, "kafka": {
        "listener": {"tls": {"secretName": "kafka-tls", "clientAuth": "none"}}}})])
    assert "listener.name.ssl.ssl.client.auth" not in _properties(objects)
