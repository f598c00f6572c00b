"""A cluster shared with other people (README, "Security"), on the release `make run` leaves in a
namespace that enforces Pod Security "restricted", with NetworkPolicies enforced by a real
engine (kube-router's firewall, in the offline node image): what a user bound only to the editor
role may not do, where a fetcher may not go, which Pods reach Kafka and Redis, two releases on
one Kafka, and a fetcher Pod whose image cannot be pulled."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

NAMESPACE = "molstream"  # .env
RELEASE = "molstream"
OTHER = "molstream-b"  # the second release, and its namespace
OTHER_ROWS = 2_000
KAFKA = f"{RELEASE}-kafka.{NAMESPACE}.svc:9092"
HELM = str(Path(__file__).resolve().parents[2] / ".cache/bin/helm")

# The restricted Pod Security Standard, which every Pod in the namespace must meet.
RESTRICTED_POD = {"runAsNonRoot": True, "runAsUser": 10001,
                  "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}

# Connects to each (name, host, port) and prints what happened, as JSON: "connected", or the
# last error. Each target is tried for 30 s: the policy engine admits a new Pod once it has
# seen its address (a race of a second or so), and a refusal must hold for all that time. A
# NetworkPolicy's refusal shows as "Connection refused" (kube-router rejects) or a timeout.
CONNECT = textwrap.dedent("""
    import json, socket, sys, time
    result = {}
    for name, host, port in json.loads(sys.argv[1]):
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection((host, port), timeout=3).close()
                result[name] = "connected"
                break
            except OSError as exc:
                result[name] = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                break
            time.sleep(1)
    print(json.dumps(result))
""")


def _probe(cluster, name: str, labels: dict, targets: list, namespace: str = NAMESPACE) -> dict:
    """Run CONNECT in a Pod with `labels` (molstream's image, restricted) and return its JSON."""
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "restartPolicy": "Never", "automountServiceAccountToken": False,
            "securityContext": RESTRICTED_POD,
            "containers": [{
                "name": "probe", "image": "molstream:dev", "imagePullPolicy": "Never",
                "command": ["python", "-c", CONNECT, json.dumps(targets)],
                "securityContext": RESTRICTED_CONTAINER,
            }],
        },
    }
    cluster.kubectl("delete", "pod", name, "-n", namespace, "--ignore-not-found", "--wait=true")
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    try:
        cluster.kubectl("wait", "--for=jsonpath={.status.phase}=Succeeded", f"pod/{name}",
                        "-n", namespace, "--timeout=300s")
        return json.loads(cluster.kubectl("logs", name, "-n", namespace).stdout)
    finally:
        cluster.kubectl("delete", "pod", name, "-n", namespace, "--wait=false", check=False)


def _editor_role(cluster) -> str:
    """The chart's editor ClusterRole (its name carries the namespace: one per release)."""
    name = f"{RELEASE}-{NAMESPACE}-ingestrequest-editor"
    cluster.kubectl("get", "clusterrole", name)
    return name


def _ingestrequest(name: str, url: str, secret: str | None = None, namespace: str = NAMESPACE
                   ) -> str:
    spec: dict = {"url": url, "batchSize": 5000}
    if secret:
        spec["credentialsSecret"] = {"name": secret}
    return json.dumps({"apiVersion": "molstream.io/v1alpha1", "kind": "IngestRequest",
                       "metadata": {"name": name, "namespace": namespace}, "spec": spec})


def test_the_namespace_enforces_restricted_and_every_pod_of_the_release_runs_in_it(cluster, ran):
    assert ran.returncode == 0, (ran.stdout + ran.stderr)[-6000:]
    labels = json.loads(cluster.kubectl("get", "namespace", NAMESPACE, "-o", "json").stdout)[
        "metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    # A Pod that asks for more is refused by the API server: the policy is really enforced.
    refused = cluster.k("run", "privileged", "--image=molstream:dev", "--restart=Never",
                        "--overrides", json.dumps({"spec": {"containers": [{
                            "name": "privileged", "image": "molstream:dev",
                            "securityContext": {"privileged": True}}]}}),
                        check=False)
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr, refused.stderr
    pods = cluster.json("pods")["items"]
    running = {p["metadata"]["labels"].get("app.kubernetes.io/component")
               for p in pods if p["status"]["phase"] == "Running"}
    assert {"worker", "operator", "ftp"} <= running, running
    policies = json.loads(cluster.kubectl("get", "pods", "-n", "kube-system", "-l",
                                          "k8s-app=kube-router", "-o", "json").stdout)["items"]
    assert policies and all(p["status"]["phase"] == "Running" for p in policies)


def test_an_editor_cannot_name_a_secret_it_may_not_read(cluster, ran):
    assert ran.returncode == 0
    user = "e2e-alice"
    secret = "e2e-db-superuser"  # what CloudNativePG's <cluster>-superuser Secret holds
    cluster.k("create", "secret", "generic", secret, "--from-literal=username=postgres",
              "--from-literal=password=not-for-alice")
    cluster.k("label", "secret", secret, "molstream.io/source-credentials=true")
    cluster.k("create", "rolebinding", "e2e-alice-editor", f"--clusterrole={_editor_role(cluster)}",
              f"--user={user}")
    try:
        def can_i(*what: str) -> str:
            return cluster.k("auth", "can-i", *what, f"--as={user}", check=False).stdout.strip()
        assert can_i("create", "ingestrequests.molstream.io") == "yes"
        assert can_i("get", f"secret/{secret}") == "no"

        def create(name: str, secret_name: str | None):
            return cluster.k("create", f"--as={user}", "--dry-run=server", "-f", "-",
                             stdin=_ingestrequest(name, "https://files.example.org/a.csv.gz",
                                                  secret_name), check=False)
        refused = create("e2e-steal", secret)
        assert refused.returncode != 0, refused.stdout
        assert "ValidatingAdmissionPolicy" in refused.stderr and secret in refused.stderr, (
            refused.stderr)
        # Without credentials, or once allowed to read that Secret, the same user may.
        assert create("e2e-plain", None).returncode == 0
        cluster.k("create", "role", "e2e-read-db", "--verb=get", "--resource=secrets",
                  f"--resource-name={secret}")
        cluster.k("create", "rolebinding", "e2e-alice-read-db", "--role=e2e-read-db",
                  f"--user={user}")
        assert cluster.wait_for(lambda: create("e2e-allowed", secret).returncode == 0,
                                "the RoleBinding to take effect", timeout_s=120)
    finally:
        for kind, name in (("rolebinding", "e2e-alice-editor"),
                           ("rolebinding", "e2e-alice-read-db"), ("role", "e2e-read-db"),
                           ("secret", secret)):
            cluster.k("delete", kind, name, "--ignore-not-found", check=False)


def _service_ip(cluster, name: str) -> str:
    return cluster.json("service", name)["spec"]["clusterIP"]


def test_a_fetcher_aimed_inside_the_cluster_fails_with_the_reason_and_reaches_nothing(cluster, ran):
    assert ran.returncode == 0
    redis = f"{RELEASE}-redis"
    targets = {
        "e2e-ssrf-metadata": ("http://169.254.169.254/latest/meta-data/x.csv", "link-local"),
        "e2e-ssrf-apiserver": ("https://kubernetes.default.svc/api/v1/x.csv", "private"),
        "e2e-ssrf-redis": (f"http://{redis}:6379/x.csv", "private"),
        "e2e-ssrf-redis-ip": (f"http://{_service_ip(cluster, redis)}:6379/x.csv", "private"),
    }
    for name, (url, _) in targets.items():
        cluster.k("apply", "-f", "-", stdin=_ingestrequest(name, url))
    try:
        for name, (_url, klass) in targets.items():
            status = cluster.wait_for(
                lambda n=name: (s := cluster.ir_status(n)).get("phase") in ("Succeeded", "Failed")
                and s, f"{name} to end")
            message = status.get("message", "")
            assert status["phase"] == "Failed", (name, status)
            assert klass in message and "refused" in message, (name, message)
            # The reason is an address class, never an answer's body (nothing answered).
            assert "HTTP/" not in message and "<html" not in message.lower(), (name, message)
            jobs = cluster.json("jobs", "-l", f"molstream.io/ingestrequest={name}")["items"]
            # A permanent error: failed at once by the Job's podFailurePolicy, never retried.
            assert all((j["status"].get("failed") or 0) <= 1 for j in jobs), (name, jobs)
    finally:
        for name in targets:
            cluster.k("delete", "ir", name, "--wait=false", check=False)

    # The egress NetworkPolicy stops what a fetcher's own checks would let through: a Pod with
    # the fetcher's labels reaches DNS and Kafka, not Redis, the API server or the metadata
    # address.
    fetcher = {"app.kubernetes.io/name": "molstream", "app.kubernetes.io/component": "fetcher",
               "app.kubernetes.io/instance": RELEASE, "app.kubernetes.io/part-of": "molstream"}
    reached = _probe(cluster, "e2e-fetcher-egress", fetcher, [
        ["kafka", f"{RELEASE}-kafka", 9092],
        ["redis", _service_ip(cluster, redis), 6379],
        ["apiserver", "kubernetes.default.svc", 443],
        ["metadata", "169.254.169.254", 80],
    ])
    assert reached["kafka"] == "connected", reached
    for name in ("redis", "apiserver", "metadata"):
        assert reached[name] != "connected", reached


def test_a_pod_without_molstream_s_labels_reaches_neither_kafka_nor_redis(cluster, ran):
    assert ran.returncode == 0
    targets = [["kafka", f"{RELEASE}-kafka", 9092], ["redis", f"{RELEASE}-redis", 6379]]
    stranger = _probe(cluster, "e2e-stranger", {"app": "e2e-stranger"}, targets)
    assert stranger["kafka"] != "connected" and stranger["redis"] != "connected", stranger
    # The same Pod with the worker's labels does: the policies select on them (labels anyone
    # who may create Pods here can set; README, "Security").
    worker = {"app.kubernetes.io/name": "molstream", "app.kubernetes.io/component": "worker",
              "app.kubernetes.io/instance": RELEASE}
    assert _probe(cluster, "e2e-worker-labels", worker, targets) == {
        "kafka": "connected", "redis": "connected"}


def _activities(cluster, namespace: str, release: str) -> int:
    count = ("import os, sqlite3; "
             "path = os.environ['MOLSTREAM_DATABASE_URL'].removeprefix('sqlite:///'); "
             "print(sqlite3.connect(path).execute('select count(*) from activity').fetchone()[0])")
    out = cluster.kubectl("exec", "-n", namespace, f"deploy/{release}-worker", "--", "python",
                          "-c", count).stdout
    return int(out.strip())


def test_two_releases_in_two_namespaces_on_one_kafka_each_land_only_their_own_rows(
        cluster, ran, tmp_path):
    assert ran.returncode == 0
    before = _activities(cluster, NAMESPACE, RELEASE)
    try:
        # The first release's Kafka admits the other namespace's molstream Pods.
        admit = tmp_path / "admit-other.yaml"
        admit.write_text(json.dumps({"kafka": {"networkPolicy": {"extraFrom": [{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": OTHER}},
            # its worker, operator, topics Job and fetchers (whose instance label is their
            # IngestRequest's)
            "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "molstream"}}}]}}}))
        upgraded = cluster.make("deploy", f"EXTRA_HELM_ARGS=--values {admit}")
        assert upgraded.returncode == 0, (upgraded.stdout + upgraded.stderr)[-4000:]
        # The second release: the first one's Kafka, no Kafka UI, and small CPU requests (the
        # kind node has two cores, which the first release and the control plane mostly reserve).
        other = {"kafka": {"external": {"bootstrapServers": KAFKA},
                           "topics": {"resources": {"requests": {"cpu": "10m"}}}},
                 "kafka-ui": {"enabled": False},
                 # The CRD is cluster-scoped and the first release's.
                 "crds": {"create": False},
                 **{part: {"resources": {"requests": {"cpu": "20m"}}}
                    for part in ("worker", "operator", "fetcher", "ftp")}}
        other_values = tmp_path / "other.yaml"
        other_values.write_text(json.dumps(other))

        def deploy_other(*more: str) -> None:
            done = cluster.make("deploy", f"NAMESPACE={OTHER}", f"RELEASE={OTHER}",
                                f"LOCAL_ROWS={OTHER_ROWS}",
                                f"EXTRA_HELM_ARGS=--values {other_values} {' '.join(more)}")
            assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        deploy_other()
        name = "e2e-other-release"
        ir = json.loads(_ingestrequest(name, f"ftp://{OTHER}-ftp:2121/activities.csv.gz",
                                       f"{OTHER}-ftp", namespace=OTHER))  # the chart's Secret
        ir["spec"]["allowInsecureCredentials"] = True
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(ir))
        def other_status(ir_name: str) -> dict:
            return json.loads(cluster.kubectl("get", "ir", ir_name, "-n", OTHER, "-o", "json")
                              .stdout).get("status", {})
        status = cluster.wait_for(
            lambda: (s := other_status(name)).get("phase") in ("Succeeded", "Failed") and s,
            "the other release's ingest")
        assert (status["phase"], status["rowsPublished"]) == ("Succeeded", OTHER_ROWS), status
        assert _activities(cluster, OTHER, OTHER) == OTHER_ROWS
        assert _activities(cluster, NAMESPACE, RELEASE) == before

        # A fetcher Pod whose image cannot be pulled: the IngestRequest says so while it waits.
        deploy_other("--set fetcher.image.repository=molstream-e2e/not-there")
        stuck = "e2e-pull-fails"
        ir["metadata"]["name"] = stuck
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(ir))
        message = cluster.wait_for(
            lambda: "ImagePullBackOff" in (m := other_status(stuck).get("message", "")) and m,
            "ImagePullBackOff in the status", timeout_s=300)
        stalled = [c for c in other_status(stuck)["conditions"] if c["type"] == "Stalled"]
        assert stalled and stalled[0]["status"] == "True", stalled
        assert "molstream-e2e/not-there" in message, message
    finally:
        # The second release goes (its cluster-scoped roles and policy with it), so that later
        # tests have the node's CPU and one release again.
        subprocess.run([HELM, "uninstall", OTHER, "--kube-context", cluster.context,
                        "--namespace", OTHER, "--wait", "--timeout", "5m"],
                       capture_output=True, timeout=600)
        cluster.kubectl("delete", "namespace", OTHER, "--wait=false", check=False)
