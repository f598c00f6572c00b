"""The chart's side of issue 19 (a cluster shared with other people), without a cluster: the
fetchers' egress policy, a data plane that admits only molstream's own Pods (Redis with a
password, Kafka UI with a login), per-release names, the operator's SSRF and credentials
settings, registries, pull secrets and scheduling for every Pod (the fetcher's through the
operator's template), and Pod Security "restricted" on every rendered Pod."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from chartlib import KIND_VALUES, Render, env_of, find, operator_built_job, pod_spec, selects
from molstream_operator.config import FetcherTemplate

FETCHER = {
    "app.kubernetes.io/name": "molstream",
    "app.kubernetes.io/instance": "some-ingestrequest",
    "app.kubernetes.io/component": "fetcher",
    "app.kubernetes.io/part-of": "molstream",
}
# A Pod anyone could start with molstream's "part-of" label only: it must be admitted nowhere.
PART_OF_ONLY = {"app.kubernetes.io/part-of": "molstream", "app.kubernetes.io/name": "x"}


def _pod_labels(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, str]:
    obj = find(objects, kind, name)
    if kind == "Pod":
        return obj["metadata"]["labels"]
    return obj["spec"]["template"]["metadata"]["labels"]


def _operator_env(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec = pod_spec(find(objects, "Deployment", "molstream-operator"))
    assert spec is not None
    return env_of(spec["containers"][0])


def _template(objects: list[dict[str, Any]]) -> dict[str, Any]:
    data = find(objects, "ConfigMap", "molstream-fetcher-template")["data"]
    return yaml.safe_load(data["fetcher-template.yaml"])


def _fetcher_job(objects: list[dict[str, Any]], tmp_path: Path) -> dict[str, Any]:
    """The Job the operator would build from the chart's environment and fetcher template."""
    return operator_built_job(objects, tmp_path, {"url": "https://example.org/activities.csv.gz"})


def _ingress_admits(
    objects: list[dict[str, Any]], target: dict[str, str], source: dict[str, str]
) -> bool:
    """Whether some NetworkPolicy selecting `target` admits a Pod of the same namespace with
    `source`'s labels (podSelector peers without a namespaceSelector)."""
    for policy in objects:
        if policy["kind"] != "NetworkPolicy" or not selects(policy["spec"]["podSelector"], target):
            continue
        for rule in policy["spec"].get("ingress", []):
            peers = rule.get("from")
            if not peers:
                return True
            for peer in peers:
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    if selects(peer["podSelector"], source):
                        return True
    return False


def _peer_selects(peer: dict[str, Any], labels: dict[str, str]) -> bool:
    return "podSelector" in peer and selects(peer["podSelector"], labels)


def _egress(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    policies = [
        o
        for o in objects
        if o["kind"] == "NetworkPolicy"
        and "Egress" in o["spec"]["policyTypes"]
        and selects(o["spec"]["podSelector"], FETCHER)
    ]
    assert len(policies) == 1, [p["metadata"]["name"] for p in policies]
    return policies[0]["spec"]["egress"]


def test_the_operator_puts_the_labels_the_policies_select_on(
    render: Render, tmp_path: Path
) -> None:
    """The fetcher's policies select the labels the operator really puts on its Pods."""
    objects = render()
    labels = _fetcher_job(objects, tmp_path)["spec"]["template"]["metadata"]["labels"]
    assert any(  # the egress policy selects them ...
        o["kind"] == "NetworkPolicy"
        and "Egress" in o["spec"]["policyTypes"]
        and selects(o["spec"]["podSelector"], labels)
        for o in objects
    )
    # ... and so does Kafka's ingress policy.
    assert _ingress_admits(objects, _pod_labels(objects, "StatefulSet", "molstream-kafka"), labels)


def test_fetcher_egress_dns_kafka_and_the_world_minus_cluster_ranges(render: Render) -> None:
    objects = render()
    egress = _egress(objects)
    dns = next(r for r in egress if {"port": 53, "protocol": "UDP"} in r.get("ports", []))
    assert {"port": 53, "protocol": "TCP"} in dns["ports"]
    (peer,) = dns["to"]
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "kube-system"
    }
    assert selects(peer["podSelector"], {"k8s-app": "kube-dns"})
    kafka_labels = _pod_labels(objects, "StatefulSet", "molstream-kafka")
    kafka = next(r for r in egress if any(_peer_selects(p, kafka_labels) for p in r["to"]))
    assert kafka["ports"] == [{"port": 9092, "protocol": "TCP"}]
    world = next(r for r in egress if any("ipBlock" in p for p in r.get("to", [])))
    blocks = {p["ipBlock"]["cidr"]: set(p["ipBlock"]["except"]) for p in world["to"]}
    assert blocks == {
        "0.0.0.0/0": {
            "169.254.0.0/16",
            "168.63.129.16/32",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
        },
        "::/0": {"fe80::/10", "64:ff9b:1::/48", "fc00::/7"},
    }
    # The metadata address, the kind/Kubernetes ranges and a private one are out; a public
    # address is in.
    for address, reachable in [
        ("169.254.169.254", False),
        ("168.63.129.16", False),  # Azure's WireServer
        ("168.63.129.17", True),
        ("64:ff9b:1::a9fe:a9fe", False),  # local-use NAT64 (RFC 8215) of the metadata address
        ("64:ff9b:1:a9fe:a9:fe00::", False),
        ("10.96.0.1", False),
        ("10.244.0.7", False),
        ("192.168.1.1", False),
        ("fd00::1", False),
        ("193.62.193.80", True),  # ftp.ebi.ac.uk
        ("2001:db8::1", True),
    ]:
        ip = ipaddress.ip_address(address)
        inside = [
            cidr
            for cidr, excepted in blocks.items()
            if ip in ipaddress.ip_network(cidr)
            and not any(ip in ipaddress.ip_network(e) for e in excepted)
        ]
        assert bool(inside) is reachable, address
    # No demo FTP server by default: no rule for it.
    assert not any(
        _peer_selects(p, {"app.kubernetes.io/component": "ftp"})
        for r in egress
        for p in r.get("to", [])
    )


def test_fetcher_egress_values(render: Render, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "ftp": {"enabled": True},
                "networkPolicy": {
                    "fetcherEgress": {
                        "clusterNetworks": ["10.0.0.0/8"],
                        "extraTo": [
                            {
                                "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
                                "ports": [{"port": 443}],
                            }
                        ],
                    }
                },
            }
        )
    )
    objects = render(values_files=[values])
    egress = _egress(objects)
    ftp_labels = _pod_labels(objects, "Deployment", "molstream-ftp")
    ftp = next(r for r in egress if any(_peer_selects(p, ftp_labels) for p in r["to"]))
    assert {"port": 2121, "protocol": "TCP"} in ftp["ports"]
    assert {"port": 30000, "endPort": 30003, "protocol": "TCP"} in ftp["ports"]
    world = next(
        r for r in egress if any("ipBlock" in p for p in r.get("to", [])) and "ports" not in r
    )
    assert world["to"][0]["ipBlock"]["except"] == [
        "169.254.0.0/16", "168.63.129.16/32", "10.0.0.0/8"]
    assert world["to"][1]["ipBlock"]["except"] == ["fe80::/10", "64:ff9b:1::/48"]
    assert egress[-1] == {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 443}]}
    # The FTP server admits the fetchers (and the helm test), not any molstream-labelled Pod.
    assert _ingress_admits(objects, ftp_labels, FETCHER)
    assert not _ingress_admits(objects, ftp_labels, PART_OF_ONLY)
    # Switched off.
    objects = render(set={"networkPolicy.fetcherEgress.enabled": "false"})
    assert not [
        o for o in objects if o["kind"] == "NetworkPolicy" and "Egress" in o["spec"]["policyTypes"]
    ]


def test_fetcher_egress_to_an_external_kafka(render: Render) -> None:
    objects = render(
        set={
            "kafka.external.bootstrapServers": "kafka-0.example:9093\\,kafka-1.example:9093",
        }
    )
    egress = _egress(objects)
    external = next(r for r in egress if r.get("ports") == [{"port": 9093, "protocol": "TCP"}])
    assert "to" not in external  # the port, at any address (kafkaTo narrows it)


def test_kafka_and_redis_admit_only_molstream_s_components(render: Render) -> None:
    objects = render(values_files=[KIND_VALUES])
    kafka = _pod_labels(objects, "StatefulSet", "molstream-kafka")
    redis = _pod_labels(objects, "Deployment", "molstream-redis")
    worker = _pod_labels(objects, "Deployment", "molstream-worker")
    operator = _pod_labels(objects, "Deployment", "molstream-operator")
    test = _pod_labels(objects, "Pod", "molstream-test")
    topics = _pod_labels(objects, "Job", "molstream-kafka-topics")
    ui = _pod_labels(objects, "Deployment", "molstream-kafka-ui")
    ftp = _pod_labels(objects, "Deployment", "molstream-ftp")
    other_release = {**worker, "app.kubernetes.io/instance": "other"}
    for source in (worker, operator, test, topics, ui, FETCHER):
        assert _ingress_admits(objects, kafka, source), source
    for source in (PART_OF_ONLY, ftp, redis, other_release):
        assert not _ingress_admits(objects, kafka, source), source
    for source in (worker, test):
        assert _ingress_admits(objects, redis, source), source
    for source in (PART_OF_ONLY, FETCHER, operator, ui, ftp, other_release):
        assert not _ingress_admits(objects, redis, source), source


def test_a_release_in_another_namespace_can_be_admitted_to_kafka(
    render: Render, tmp_path: Path
) -> None:
    peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "other"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "molstream"}},
    }
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"kafka": {"networkPolicy": {"extraFrom": [peer]}}}))
    policy = find(render(values_files=[values]), "NetworkPolicy", "molstream-kafka")
    assert peer in policy["spec"]["ingress"][0]["from"]


def test_redis_asks_for_a_password_from_a_secret(render: Render) -> None:
    objects = render(values_files=[KIND_VALUES])
    secret = find(objects, "Secret", "molstream-redis")
    password = secret["data"]["password"]
    assert len(password) >= 40  # 32 characters, base64
    deployment = find(objects, "Deployment", "molstream-redis")
    spec = pod_spec(deployment)
    assert spec is not None
    (container,) = spec["containers"]
    assert 'requirepass "$(cat /etc/redis-auth/password)"' in container["args"][0]
    assert "env" not in container  # neither in the environment ...
    assert "requirepass" not in json.dumps(container["command"])  # ... nor on the command line
    volume = next(v for v in spec["volumes"] if v["name"] == "auth")
    assert volume["secret"]["secretName"] == "molstream-redis"
    probe = container["readinessProbe"]["exec"]["command"][-1]
    assert "REDISCLI_AUTH" in probe and "ping" in probe
    # Every Redis client takes the password from the Secret.
    for kind, name in (("Deployment", "molstream-worker"), ("Pod", "molstream-test")):
        pod = pod_spec(find(objects, kind, name))
        assert pod is not None
        env = env_of(pod["containers"][0])
        assert env["REDIS_PASSWORD"] == {
            "secretKeyRef": {"name": "molstream-redis", "key": "password"}
        }, name
        url = env.get("MOLSTREAM_REDIS_URL", env.get("REDIS_URL"))
        assert url.startswith("redis://:$(REDIS_PASSWORD)@"), name
    # An existing Secret instead: nothing generated.
    objects = render(
        set={"redis.auth.existingSecret": "mine", "redis.auth.existingSecretKey": "pw"}
    )
    assert not [o for o in objects if o["kind"] == "Secret" and "redis" in o["metadata"]["name"]]
    worker = pod_spec(find(objects, "Deployment", "molstream-worker"))
    assert worker is not None
    assert env_of(worker["containers"][0])["REDIS_PASSWORD"] == {
        "secretKeyRef": {"name": "mine", "key": "pw"}
    }


def test_kafka_ui_logs_people_in_and_admits_its_namespace_only(render: Render) -> None:
    objects = render(values_files=[KIND_VALUES])
    ui = find(objects, "Deployment", "molstream-kafka-ui")
    spec = pod_spec(ui)
    assert spec is not None
    env = env_of(spec["containers"][0])
    assert env["AUTH_TYPE"] == "LOGIN_FORM"
    for name, key in (
        ("SPRING_SECURITY_USER_NAME", "username"),
        ("SPRING_SECURITY_USER_PASSWORD", "password"),
    ):
        assert env[name] == {"secretKeyRef": {"name": "molstream-kafka-ui", "key": key}}
    assert set(find(objects, "Secret", "molstream-kafka-ui")["data"]) == {"username", "password"}
    (rule,) = find(objects, "NetworkPolicy", "molstream-kafka-ui")["spec"]["ingress"]
    peers = rule["from"]
    # Pods of its namespace (a podSelector without namespaceSelector), and on kind the node
    # network the NodePort's connections come from (externalTrafficPolicy Local: no SNAT).
    assert {"podSelector": {}} in peers
    assert not [p for p in peers if "namespaceSelector" in p]
    assert {"ipBlock": {"cidr": "172.16.0.0/12"}} in peers
    assert "10.244.0.0/16" not in json.dumps(peers)  # kind's Pod range
    service = find(objects, "Service", "molstream-kafka-ui")
    assert service["spec"]["externalTrafficPolicy"] == "Local"


def test_per_release_defaults(render: Render) -> None:
    """Two releases of the same name in two namespaces: their topics, consumer groups and
    cluster-scoped objects differ; global.topicPrefix and the consumerGroup values win."""
    seen = []
    for namespace in ("team-a", "team-b"):
        objects = render(namespace=namespace)
        worker = pod_spec(find(objects, "Deployment", "molstream-worker"))
        assert worker is not None
        env = env_of(worker["containers"][0])
        operator = _operator_env(objects)
        topics = pod_spec(find(objects, "Job", "molstream-kafka-topics"))
        assert topics is not None
        prefix = f"{namespace}.molstream"
        assert env["MOLSTREAM_TOPIC_PREFIX"] == operator["MOLSTREAM_TOPIC_PREFIX"] == prefix
        assert env_of(topics["containers"][0])["PREFIX"] == prefix
        assert env["MOLSTREAM_WORKER_GROUP"] == f"{prefix}-worker"
        assert operator["MOLSTREAM_OPERATOR_GROUP_ID"] == f"{prefix}-operator"
        test = find(objects, "Pod", "molstream-test")
        assert env_of(test["spec"]["containers"][0])["PREFIX"] == prefix
        cluster_scoped = {
            (o["kind"], o["metadata"]["name"])
            for o in objects
            if o["kind"].startswith("Cluster") or o["kind"].startswith("ValidatingAdmission")
        }
        assert cluster_scoped == {
            ("ClusterRole", f"molstream-{namespace}-ingestrequest-editor"),
            ("ClusterRole", f"molstream-{namespace}-ingestrequest-viewer"),
            ("ValidatingAdmissionPolicy", f"molstream-{namespace}-credentials-secret"),
            ("ValidatingAdmissionPolicyBinding", f"molstream-{namespace}-credentials-secret"),
        }
        seen.append(cluster_scoped)
    assert not seen[0] & seen[1]
    objects = render(
        set={
            "global.topicPrefix": "chembl",
            "worker.consumerGroup": "w",
            "operator.consumerGroup": "o",
        }
    )
    worker = pod_spec(find(objects, "Deployment", "molstream-worker"))
    assert worker is not None
    env = env_of(worker["containers"][0])
    assert (env["MOLSTREAM_TOPIC_PREFIX"], env["MOLSTREAM_WORKER_GROUP"]) == ("chembl", "w")
    assert _operator_env(objects)["MOLSTREAM_OPERATOR_GROUP_ID"] == "o"
    topics = pod_spec(find(objects, "Job", "molstream-kafka-topics"))
    assert topics is not None
    assert env_of(topics["containers"][0])["PREFIX"] == "chembl"


def test_admission_policy_and_binding(render: Render) -> None:
    objects = render()
    policy = find(objects, "ValidatingAdmissionPolicy", "molstream-molstream-credentials-secret")
    assert policy["apiVersion"] == "admissionregistration.k8s.io/v1"
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule["operations"] == ["CREATE", "UPDATE"] and rule["resources"] == ["ingestrequests"]
    (validation,) = policy["spec"]["validations"]
    expression = "".join(validation["expression"].split())
    assert expression == (
        "authorizer.group('').resource('secrets').namespace(object.metadata.namespace)"
        ".name(object.spec.credentialsSecret.name).check('get').allowed()"
    )
    binding = find(objects, "ValidatingAdmissionPolicyBinding", policy["metadata"]["name"])
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "molstream"}
    }
    assert not [
        o for o in render(set={"admissionPolicy.enabled": "false"}) if "Admission" in o["kind"]
    ]


def test_operator_security_settings(render: Render) -> None:
    env = _operator_env(render())
    assert env["MOLSTREAM_ALLOW_INSECURE_CREDENTIALS"] == "false"
    assert env["MOLSTREAM_ALLOWED_NETWORKS"] == ""
    assert env["MOLSTREAM_INTERNAL_HOSTS"] == ""
    assert env["MOLSTREAM_DENIED_NETWORKS"] == ""
    objects = render(
        set={
            "operator.allowInsecureCredentials": "true",
            "operator.allowedNetworks": "{10.20.0.0/16,fd00:1::/64}",
            "operator.internalHosts": "{files.internal.example.org}",
            "operator.deniedNetworks": "{203.0.113.0/24}",
            "ftp.enabled": "true",
        },
        namespace="team-a",
    )
    env = _operator_env(objects)
    assert env["MOLSTREAM_ALLOW_INSECURE_CREDENTIALS"] == "true"
    assert env["MOLSTREAM_ALLOWED_NETWORKS"] == "10.20.0.0/16,fd00:1::/64"
    assert env["MOLSTREAM_DENIED_NETWORKS"] == "203.0.113.0/24"
    # The demo FTP Service's names are added: the fetcher refuses its cluster address otherwise.
    assert env["MOLSTREAM_INTERNAL_HOSTS"].split(",") == [
        "files.internal.example.org",
        "molstream-ftp",
        "molstream-ftp.team-a",
        "molstream-ftp.team-a.svc",
        "molstream-ftp.team-a.svc.cluster.local",
    ]
    # Its Secret may serve as an IngestRequest's credentials (the operator's opt-in label).
    secret = find(objects, "Secret", "molstream-ftp")
    assert secret["metadata"]["labels"]["molstream.io/source-credentials"] == "true"
    # kind: the sample logs in over plain FTP, which the chart allows there.
    kind_env = _operator_env(render(values_files=[KIND_VALUES]))
    assert kind_env["MOLSTREAM_ALLOW_INSECURE_CREDENTIALS"] == "true"


SCHEDULING = {
    "nodeSelector": {"pool": "molstream"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "molstream", "effect": "NoSchedule"}
    ],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            }
        }
    },
    "priorityClassName": "molstream-high",
}


def test_registry_pull_secrets_and_scheduling_reach_every_pod(
    render: Render, tmp_path: Path
) -> None:
    components = ["worker", "operator", "fetcher", "ftp", "kafka", "redis", "kafka-ui"]
    values: dict[str, Any] = {
        "global": {
            "imageRegistry": "registry.example.org/mirror",
            "imagePullSecrets": [{"name": "global"}],
        },
        "imagePullSecrets": [{"name": "molstream"}],
        "ftp": {"enabled": True},
        "kafka-ui": {"enabled": True},
    }
    for component in components:
        values.setdefault(component, {}).update(
            {**SCHEDULING, "imagePullSecrets": [{"name": f"{component}-only"}]}
        )
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    objects = render(values_files=[path])
    pods = {
        f"{o['kind']}/{o['metadata']['name']}": pod_spec(o)
        for o in objects
        if pod_spec(o) is not None
    }
    owner = {
        "Deployment/molstream-worker": "worker",
        "Deployment/molstream-operator": "operator",
        "Deployment/molstream-ftp": "ftp",
        "StatefulSet/molstream-kafka": "kafka",
        "Job/molstream-kafka-topics": "kafka",
        "Deployment/molstream-redis": "redis",
        "Deployment/molstream-kafka-ui": "kafka-ui",
        "Pod/molstream-test": None,
    }
    assert set(pods) == set(owner)
    for where, spec in pods.items():
        assert spec is not None
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            assert container["image"].startswith("registry.example.org/mirror/"), where
        secrets = [s["name"] for s in spec["imagePullSecrets"]]
        assert secrets[0] == "global", where
        component = owner[where]
        if component is None:
            assert secrets == ["global", "molstream"]
            continue
        assert f"{component}-only" in secrets, where
        for key, value in SCHEDULING.items():
            assert spec[key] == value, f"{where} {key}"
    # The fetchers: the operator's template file carries the same keys.
    template = _template(objects)
    assert template["image"].startswith("registry.example.org/mirror/molstream:")
    assert template["imagePullSecrets"] == [
        {"name": "global"},
        {"name": "molstream"},
        {"name": "fetcher-only"},
    ]
    for key, value in SCHEDULING.items():
        assert template[key] == value, key
    assert template["ttlSecondsAfterFinished"] == 3600
    FetcherTemplate.from_mapping(template)  # the operator's parser takes it


def test_fetcher_image_override(render: Render) -> None:
    template = _template(render(set={"fetcher.image.repository": "molstream-e2e/not-there"}))
    assert template["image"] == "molstream-e2e/not-there:0.2.0"
    digest = "sha256:" + "cd" * 32
    template = _template(render(set={"fetcher.image.digest": digest}))
    assert template["image"] == f"molstream@{digest}"


def _restricted_violations(where: str, spec: dict[str, Any]) -> list[str]:
    """The Pod Security Standard "restricted" (v1.32) checks, on one Pod spec."""
    bad = []
    pod_ctx = spec.get("securityContext", {})
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            bad.append(f"{where}: {key}")
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        allowed = {
            "configMap",
            "csi",
            "downwardAPI",
            "emptyDir",
            "ephemeral",
            "persistentVolumeClaim",
            "projected",
            "secret",
        }
        if not kinds <= allowed:
            bad.append(f"{where}: volume {volume['name']} {kinds}")
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        at = f"{where} container {container['name']}"
        ctx = container.get("securityContext", {})
        if ctx.get("privileged"):
            bad.append(f"{at}: privileged")
        if ctx.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{at}: allowPrivilegeEscalation")
        caps = ctx.get("capabilities", {})
        if "ALL" not in caps.get("drop", []) or set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            bad.append(f"{at}: capabilities {caps}")
        if ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is not True:
            bad.append(f"{at}: runAsNonRoot")
        if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
            bad.append(f"{at}: runAsUser 0")
        seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile", {}))
        if seccomp.get("type") not in {"RuntimeDefault", "Localhost"}:
            bad.append(f"{at}: seccompProfile {seccomp}")
        for port in container.get("ports", []):
            if port.get("hostPort"):
                bad.append(f"{at}: hostPort")
    return bad


@pytest.mark.parametrize("files", [[], [KIND_VALUES]], ids=["defaults", "kind"])
def test_every_pod_meets_pod_security_restricted(
    render: Render, tmp_path: Path, files: list[Path]
) -> None:
    """Every Pod of the chart and the fetcher Pod the operator builds from its template.
    (tests/charts/test_chart_pod_security.py has the API server's PodSecurity admission
    enforce the same in a namespace labelled restricted.)"""
    objects = render(values_files=files, set={"metrics.enabled": "true"})
    bad = []
    for obj in objects:
        spec = pod_spec(obj)
        if spec is not None:
            bad += _restricted_violations(f"{obj['kind']}/{obj['metadata']['name']}", spec)
    job = _fetcher_job(objects, tmp_path)
    bad += _restricted_violations("fetcher Job", job["spec"]["template"]["spec"])
    assert bad == []
