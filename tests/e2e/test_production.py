"""molstream as production runs it (issue 21), in a namespace of its own enforcing Pod Security
"restricted", beside `make run`'s release (which owns the CRD): the bundled Kafka listening
SASL_SSL only (SCRAM-SHA-512, clients checking its CA and hostname), a CloudNativePG-style
PostgreSQL with TLS (the stand-in; the worker verify-full), two workers on four partitions.

The release starts as chart 0.1.0 installed it (PLAINTEXT Kafka, two partitions) and is
upgraded to this tree's chart: SASL_SSL turned on for the existing broker, the partitions
grown to four. Then real ChEMBL rows are ingested while a worker Pod is deleted, and the
database is compared with what the file implies; then `helm upgrade` again and the workers
are evicted one after another through the Eviction API, as `kubectl drain` does, against
their PodDisruptionBudget."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from expected import actual_tables, expected_tables
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
KUBECTL = str(REPO / ".cache/bin/kubectl")
NS = "molstream-prod"
RELEASE = "prod"
WORKER = f"{RELEASE}-molstream-worker"
KAFKA = f"{RELEASE}-kafka.{NS}.svc"
PG = "pg"  # a CloudNativePG cluster's name: Secrets pg-app and pg-ca, Service pg-rw
DATA = REPO / "tests/data/chembl-real/activities.csv.gz"
EXPECTED = json.loads((REPO / "tests/data/chembl-real/expected.json").read_text())
HELM = str(REPO / ".cache/bin/helm")
OLD_CHART = REPO / "tests/e2e/charts/molstream-0.1.0.tgz"
NAME = "chembl-real"

RESTRICTED_POD = {"runAsNonRoot": True, "runAsUser": 10001,
                  "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}

# The release as chart 0.1.0 takes it (no Kafka security, no database TLS settings there):
# what k8s/e2e-production.yaml says otherwise, on two partitions.
OLD_VALUES = {
    "kafka-ui": {"enabled": False}, "ftp": {"enabled": False},
    "kafka": {"topics": {"rowsPartitions": 2,
                         "resources": {"requests": {"cpu": "10m", "memory": "256Mi"}}},
              "resources": {"requests": {"cpu": "50m", "memory": "768Mi"}},
              "persistence": {"size": "1Gi"}},
    "redis": {"resources": {"requests": {"cpu": "10m", "memory": "64Mi"}}},
    "database": {"existingSecret": "pg-app", "existingSecretKey": "uri"},
    "worker": {"replicas": 2, "resources": {"requests": {"cpu": "20m"}}},
    **{part: {"resources": {"requests": {"cpu": "20m"}}} for part in ("operator", "fetcher")},
}

# The HTTP source of the real rows (as test_pods_deleted.py's, named e2e-http: the name
# k8s/e2e-values.yaml lets the fetchers reach).
SOURCE = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "e2e-http", "labels": {"app": "e2e-http"}},
    "spec": {
        "automountServiceAccountToken": False, "securityContext": RESTRICTED_POD,
        "containers": [{
            "name": "http", "image": "molstream:dev", "imagePullPolicy": "Never",
            "command": ["python", "-m", "http.server", "8000", "--directory", "/srv"],
            "ports": [{"containerPort": 8000}], "securityContext": RESTRICTED,
            "readinessProbe": {"tcpSocket": {"port": 8000}, "periodSeconds": 2},
            "volumeMounts": [{"name": "files", "mountPath": "/srv"}]}],
        "volumes": [{"name": "files", "emptyDir": {}}]},
}
SOURCE_SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "e2e-http"},
                  "spec": {"selector": {"app": "e2e-http"}, "ports": [{"port": 8000}]}}

# What a client sees of the broker from a Pod its NetworkPolicy admits (the topics Job's
# labels): PLAINTEXT on the client port, and, as molstream's user, the rows topic's partitions.
KAFKA_PROBE = r"""
set -u
bin=/opt/kafka/bin
printf 'request.timeout.ms=5000\ndefault.api.timeout.ms=15000\n' >/tmp/plain.properties
if "$bin/kafka-topics.sh" --bootstrap-server "$KAFKA" --command-config /tmp/plain.properties \
    --list >/dev/null 2>&1; then echo "plaintext=accepted"; else echo "plaintext=refused"; fi
password=$(</secrets/password)
cat >/tmp/client.properties <<EOF
security.protocol=SASL_SSL
ssl.truststore.type=PEM
ssl.truststore.location=/ca/ca.crt
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
  username="molstream" password="$password";
EOF
"$bin/kafka-topics.sh" --bootstrap-server "$KAFKA" --command-config /tmp/client.properties \
  --describe --topic "$TOPIC" | sed -n 's/.*PartitionCount: *\([0-9]*\).*/partitions=\1/p'
"""


def _run(*argv: str, timeout: float = 900) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (
        f"{' '.join(argv[:4])} … failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def _openssl_certs(out: Path) -> None:
    """A CA, and server certificates (PKCS#8 keys) for the broker's and PostgreSQL's names."""
    def ossl(*args: str) -> None:
        _run("openssl", *args)
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
         "/CN=molstream e2e CA", "-keyout", str(out / "ca.key"), "-out", str(out / "ca.crt"))
    for name, hosts in (("kafka", [KAFKA, f"{KAFKA}.cluster.local", f"{RELEASE}-kafka",
                                   f"*.{RELEASE}-kafka-headless.{NS}.svc"]),
                        ("pg", [f"{PG}-rw", f"{PG}-rw.{NS}", f"{PG}-rw.{NS}.svc",
                                f"{PG}-rw.{NS}.svc.cluster.local"])):
        ext = out / f"{name}.ext"
        ext.write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
                       "subjectAltName=" + ",".join(f"DNS:{h}" for h in hosts) + "\n")
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={hosts[0]}",
             "-keyout", str(out / f"{name}.key"), "-out", str(out / f"{name}.csr"))
        ossl("x509", "-req", "-in", str(out / f"{name}.csr"), "-CA", str(out / "ca.crt"),
             "-CAkey", str(out / "ca.key"), "-CAcreateserial", "-days", "2",
             "-extfile", str(ext), "-out", str(out / f"{name}.crt"))
    assert (out / "kafka.key").read_text().startswith("-----BEGIN PRIVATE KEY-----")


def _helm(cluster, *args: str) -> subprocess.CompletedProcess:
    return _run(HELM, *args, "--kube-context", cluster.context, "--namespace", NS, timeout=1200)


def _worker_pods(cluster) -> list[dict]:
    pods = json.loads(cluster.kubectl("get", "pods", "-n", NS, "-l",
                                      "app.kubernetes.io/component=worker", "-o", "json").stdout)
    return [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]


def _ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod["status"].get("conditions", []))


def _two_ready_workers(cluster, without: str = "") -> list[str] | None:
    pods = _worker_pods(cluster)
    names = [p["metadata"]["name"] for p in pods if _ready(p)]
    return names if len(pods) == 2 and len(names) == 2 and without not in names else None


def _evict(cluster, pod: str) -> subprocess.CompletedProcess:
    body = json.dumps({"apiVersion": "policy/v1", "kind": "Eviction",
                       "metadata": {"name": pod, "namespace": NS}})
    return cluster.kubectl("create", "--raw", f"/api/v1/namespaces/{NS}/pods/{pod}/eviction",
                           "-f", "-", stdin=body, check=False)


@pytest.fixture(scope="module")
def release(cluster, ran, tmp_path_factory) -> Iterator[dict]:
    """The namespace, its certificates and Secrets, PostgreSQL, the release installed from
    chart 0.1.0 and upgraded to this tree's chart; yields the passwords and the CA's path."""
    assert ran.returncode == 0, (ran.stdout + ran.stderr)[-6000:]  # the CRD, molstream:dev
    certs = tmp_path_factory.mktemp("certs")
    _openssl_certs(certs)
    kafka_password, pg_password = secrets.token_hex(16), secrets.token_hex(16)
    k = ["--namespace", NS]
    cluster.kubectl("delete", "namespace", NS, "--ignore-not-found", "--timeout=300s")  # a rerun
    cluster.kubectl("create", "namespace", NS)
    try:
        cluster.kubectl("label", "namespace", NS, "pod-security.kubernetes.io/enforce=restricted",
                        "pod-security.kubernetes.io/warn=restricted")
        for name, files in (("kafka-tls", {"tls.crt": "kafka.crt", "tls.key": "kafka.key",
                                            "ca.crt": "ca.crt"}),
                            ("kafka-ca", {"ca.crt": "ca.crt"}),
                            (f"{PG}-ca", {"ca.crt": "ca.crt"}),
                            (f"{PG}-server", {"tls.crt": "pg.crt", "tls.key": "pg.key"})):
            cluster.kubectl("create", "secret", "generic", name, *k,
                            *(f"--from-file={key}={certs / f}" for key, f in files.items()))
        cluster.kubectl("create", "secret", "generic", "kafka-user", *k,
                        f"--from-literal=password={kafka_password}")
        # CloudNativePG's <cluster>-app Secret: what the worker reads is its uri.
        cluster.kubectl("create", "secret", "generic", f"{PG}-app", *k,
                        "--from-literal=username=app", f"--from-literal=password={pg_password}",
                        f"--from-literal=uri=postgresql://app:{pg_password}@{PG}-rw.{NS}:5432/app")
        cluster.kubectl("apply", *k, "-f", str(REPO / "k8s/e2e-postgres.yaml"))
        cluster.kubectl("wait", *k, "--for=condition=Available", "deployment/pg", "--timeout=300s")

        values = [f"--values={REPO / 'k8s' / f}" for f in ("kind-values.yaml", "e2e-values.yaml")]
        old = certs / "old-values.json"
        old.write_text(json.dumps(OLD_VALUES))
        image = ["--set", "image.repository=molstream", "--set", "image.tag=dev"]
        _helm(cluster, "install", RELEASE, str(OLD_CHART), *values, f"--values={old}", *image,
              "--wait", "--timeout=10m")
        _helm(cluster, "upgrade", RELEASE, str(REPO / "charts/molstream"), *values,
              f"--values={REPO / 'k8s/e2e-production.yaml'}", *image, "--wait", "--timeout=10m")
        yield {"certs": certs, "kafka_password": kafka_password, "pg_password": pg_password,
               "values": [*values, f"--values={REPO / 'k8s/e2e-production.yaml'}", *image]}
    finally:
        # The IngestRequests first, while the operator is there to remove its finalizers.
        cluster.kubectl("delete", "ir", "--all", *k, "--timeout=120s", check=False)
        subprocess.run([HELM, "uninstall", RELEASE, "--kube-context", cluster.context, *k,
                        "--wait", "--timeout", "5m"], capture_output=True, timeout=600)
        cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def test_kafka_speaks_sasl_ssl_only_and_the_upgrade_grew_the_partitions(cluster, release):
    sts = json.loads(cluster.kubectl("get", "statefulset", f"{RELEASE}-kafka", "-n", NS,
                                     "-o", "json").stdout)
    # serviceName cannot change: the StatefulSet 0.1.0 made keeps its own; the headless
    # Service is there for a new one.
    assert sts["spec"]["serviceName"] == f"{RELEASE}-kafka"
    cluster.kubectl("get", "service", f"{RELEASE}-kafka-headless", "-n", NS)
    # Only the client port answers on the Pod's address (seen from the Pod itself, where no
    # NetworkPolicy stands between): the controller (9093) and inter-broker (9094) listeners
    # are on loopback.
    broker_ip = json.loads(cluster.kubectl("get", "pod", f"{RELEASE}-kafka-0", "-n", NS,
                                           "-o", "json").stdout)["status"]["podIP"]
    ports = cluster.kubectl("exec", "-n", NS, f"{RELEASE}-kafka-0", "--", "bash", "-c", (
        "for a in $0:9092 $0:9093 $0:9094 127.0.0.1:9093 127.0.0.1:9094; do "
        "timeout 5 bash -c \"</dev/tcp/${a%:*}/${a#*:}\" 2>/dev/null && echo $a=open || "
        "echo $a=closed; done"), broker_ip).stdout.split()
    assert ports == [f"{broker_ip}:9092=open", f"{broker_ip}:9093=closed",
                     f"{broker_ip}:9094=closed", "127.0.0.1:9093=open", "127.0.0.1:9094=open"]
    probe = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "e2e-kafka-probe", "namespace": NS,
                     "labels": {"app.kubernetes.io/name": "kafka-topics",
                                "app.kubernetes.io/instance": RELEASE}},
        "spec": {
            "restartPolicy": "Never", "automountServiceAccountToken": False,
            "securityContext": RESTRICTED_POD,
            "containers": [{
                "name": "probe", "image": "molstream-e2e/kafka:3.9.1", "imagePullPolicy": "Never",
                "command": ["bash", "-c", KAFKA_PROBE],
                "env": [{"name": "KAFKA", "value": f"{KAFKA}:9092"},
                        {"name": "TOPIC", "value": f"{NS}.{RELEASE}.rows"},
                        {"name": "KAFKA_HEAP_OPTS", "value": "-Xmx128m"}],
                "securityContext": {**RESTRICTED, "readOnlyRootFilesystem": True},
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"},
                                 {"name": "ca", "mountPath": "/ca"},
                                 {"name": "user", "mountPath": "/secrets"}]}],
            "volumes": [{"name": "tmp", "emptyDir": {}},
                        {"name": "ca", "secret": {"secretName": "kafka-ca"}},
                        {"name": "user", "secret": {"secretName": "kafka-user"}}]},
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(probe))
    try:
        cluster.kubectl("wait", "-n", NS, "--for=jsonpath={.status.phase}=Succeeded",
                        "pod/e2e-kafka-probe", "--timeout=300s")
        seen = dict(line.split("=", 1) for line in cluster.kubectl(
            "logs", "-n", NS, "e2e-kafka-probe").stdout.split())
    finally:
        cluster.kubectl("delete", "pod", "e2e-kafka-probe", "-n", NS, "--wait=false", check=False)
    assert seen == {"plaintext": "refused", "partitions": "4"}, seen


def test_real_rows_through_sasl_ssl_into_postgresql_with_a_worker_deleted_mid_ingest(
        cluster, release):
    k = ["--namespace", NS]
    cluster.kubectl("apply", *k, "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [SOURCE, SOURCE_SERVICE]}))
    cluster.kubectl("wait", *k, "--for=condition=Ready", "pod/e2e-http", "--timeout=300s")
    # The file written whole before it is served: copied under another name, then renamed.
    subprocess.run(
        [KUBECTL, "--context", cluster.context, *k, "exec", "-i",
         "e2e-http", "--", "python", "-c",
         "import os, sys; open('/srv/.part', 'wb').write(sys.stdin.buffer.read()); "
         "os.rename('/srv/.part', '/srv/activities.csv.gz')"],
        input=DATA.read_bytes(), capture_output=True, check=True, timeout=300)
    workers = cluster.wait_for(lambda: _two_ready_workers(cluster), "two Ready workers")

    ir = {"apiVersion": "molstream.io/v1alpha1", "kind": "IngestRequest",
          "metadata": {"name": NAME, "namespace": NS},
          # Small batches: 89 of them over four partitions, a worker deleted after the first.
          # spec.fetcher.resources (new in chart 0.2.0) over the chart's fetcher limits.
          "spec": {"url": "http://e2e-http:8000/activities.csv.gz", "batchSize": 500,
                   "fetcher": {"resources": {"limits": {"memory": "3Gi"}}}}}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(ir))

    def status() -> dict:
        return json.loads(cluster.kubectl("get", "ir", NAME, *k, "-o", "json").stdout).get(
            "status", {})
    applying = cluster.wait_for(lambda: (s := status()).get("rowsWritten") and s,
                                "the workers' first batch")
    assert applying["rowsWritten"] < EXPECTED["rows"], f"not mid-ingest: {applying}"
    cluster.kubectl("delete", "pod", workers[0], *k, "--wait=false")

    done = cluster.wait_for(lambda: (s := status()).get("phase") in ("Succeeded", "Failed")
                            and s, "the ingest to end", timeout_s=600)
    assert (done["phase"], done["rowsWritten"], done["rowsRejected"]) == (
        "Succeeded", EXPECTED["rows"], EXPECTED["rejected_rows"]), done
    assert workers[0] not in [p["metadata"]["name"] for p in _worker_pods(cluster)]
    assert done["report"]["activity"] == EXPECTED["activity"], done["report"]
    # The new spec field kept by the API server and honoured in the fetcher Job.
    kept = json.loads(cluster.kubectl("get", "ir", NAME, *k, "-o", "json").stdout)["spec"]
    assert kept["fetcher"] == {"resources": {"limits": {"memory": "3Gi"}}}, kept
    job = json.loads(cluster.kubectl("get", "job", done["jobName"], *k, "-o", "json").stdout)
    limits = job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["memory"] == "3Gi", limits

    # The database, read over TLS with the CA's check (a port-forward: the address is not
    # the certificate's name, so verify-ca), against what the file implies row by row.
    with subprocess.Popen(
            [KUBECTL, "--context", cluster.context, *k, "port-forward", f"service/{PG}-rw",
             ":5432"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as forward:
        try:
            line = forward.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 5432"
            assert line.startswith("Forwarding from 127.0.0.1:"), line + forward.stderr.read()
            port = int(line.split()[2].rsplit(":", 1)[1])
            engine = create_engine(
                f"postgresql+psycopg://app:{release['pg_password']}@127.0.0.1:{port}/app"
                f"?sslmode=verify-ca&sslrootcert={release['certs'] / 'ca.crt'}")
            try:
                actual = actual_tables(engine)
                with engine.connect() as conn:
                    plain = conn.execute(text(
                        "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
                        "WHERE a.usename = 'app' AND NOT s.ssl")).scalar()
            finally:
                engine.dispose()
        finally:
            forward.terminate()
    assert plain == 0
    expected = expected_tables(DATA)
    assert {t: len(v) for t, v in actual.items()} == {
        t: EXPECTED[t] for t in actual}, "per-table counts differ from the data's README"
    for table in expected:
        assert actual[table] == expected[table], f"{table} differs from a clean run"


def test_upgrade_and_drain_the_workers_against_their_disruption_budget(cluster, release):
    k = ["--namespace", NS]
    before = cluster.wait_for(lambda: _two_ready_workers(cluster), "two Ready workers")
    # A changed value that rolls the workers: the upgrade waits for them.
    _helm(cluster, "upgrade", RELEASE, str(REPO / "charts/molstream"), *release["values"],
          "--set", "worker.extraEnv[0].name=E2E_UPGRADED", "--set",
          "worker.extraEnv[0].value=yes", "--wait", "--timeout=10m")
    workers = cluster.wait_for(lambda: _two_ready_workers(cluster), "the upgraded workers")
    assert not set(workers) & set(before), (before, workers)
    pdbs = json.loads(cluster.kubectl("get", "pdb", *k, "-l",
                                      "app.kubernetes.io/component=worker", "-o", "json").stdout)
    assert len(pdbs["items"]) == 1, pdbs

    # kubectl drain's way: one eviction after another. The second, while the first's
    # replacement is not Ready, is refused by the budget (429).
    first, second = workers
    evicted = _evict(cluster, first)
    assert evicted.returncode == 0, evicted.stderr
    refused = _evict(cluster, second)
    assert refused.returncode != 0 and ("TooManyRequests" in refused.stderr
                                        or "429" in refused.stderr), refused.stderr
    assert "disruption budget" in refused.stderr, refused.stderr
    replaced = cluster.wait_for(lambda: _two_ready_workers(cluster, without=first),
                                "the first worker's replacement, Ready")
    assert second in replaced
    evicted = _evict(cluster, second)
    assert evicted.returncode == 0, evicted.stderr
    cluster.wait_for(lambda: _two_ready_workers(cluster, without=second),
                     "the second worker's replacement, Ready")


def test_helm_test_passes_on_the_secured_release(cluster, release):
    _helm(cluster, "test", RELEASE, "--logs", "--timeout=5m")
