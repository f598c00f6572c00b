"""Two operator replicas, one active: leader election on a Lease (molstream_operator.leadership).

The decisions are unit-tested; then real operator processes elect a leader on a real
kube-apiserver: the standby acts on nothing and stays out of the Kafka consumer group, takes
over a run when the leader is SIGKILLed in the middle of it, is handed the Lease at once when
the leader stops on SIGTERM; a leader whose Lease another holder took over exits.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from kafka.admin import KafkaAdminClient
from molstream_operator.kube import ApiError, Kube
from molstream_operator.leadership import (
    ElectionSettings,
    Record,
    expired,
    micro_time,
    next_spec,
    release_spec,
)
from operator_harness import (
    ALLOWED_HOSTS,
    RBAC_RULES,
    Namespace,
    OperatorProcess,
    Publisher,
    free_port,
    ingestrequest,
    secret,
    wait_for,
)

LEASE = "molstream-test-operator"
NOW = "2026-01-01T00:00:00.000000Z"

# --- the decisions ------------------------------------------------------------------------------


def test_a_missing_lease_is_created_with_us_as_holder() -> None:
    assert next_spec(None, identity="a", lease_s=15, now=NOW, expired=True) == {
        "holderIdentity": "a", "leaseDurationSeconds": 15, "acquireTime": NOW,
        "renewTime": NOW, "leaseTransitions": 0}


def test_a_renewal_keeps_acquire_time_and_transitions() -> None:
    mine = Record("a", 15, "2025-12-31T00:00:00.000000Z", "2025-12-31T00:00:10.000000Z", 3)
    spec = next_spec(mine, identity="a", lease_s=15, now=NOW, expired=False)
    assert spec == {"holderIdentity": "a", "leaseDurationSeconds": 15,
                    "acquireTime": "2025-12-31T00:00:00.000000Z", "renewTime": NOW,
                    "leaseTransitions": 3}


def test_another_holder_s_running_lease_is_left_alone_and_an_expired_one_taken() -> None:
    theirs = Record("b", 15, NOW, NOW, 3)
    assert next_spec(theirs, identity="a", lease_s=15, now=NOW, expired=False) is None
    taken = next_spec(theirs, identity="a", lease_s=15, now=NOW, expired=True)
    assert taken is not None
    assert (taken["holderIdentity"], taken["leaseTransitions"], taken["acquireTime"]) == (
        "a", 4, NOW)


def test_expiry_counts_from_when_we_saw_the_record_change_on_our_clock() -> None:
    theirs = Record("b", 15, NOW, NOW, 0)
    assert not expired(theirs, seen_at=100.0, now=114.9)
    assert expired(theirs, seen_at=100.0, now=115.0)
    # nobody holds it (released): free at once, whatever its duration says
    assert expired(Record("", 1, NOW, NOW, 2), seen_at=100.0, now=100.0)
    assert expired(None, seen_at=0.0, now=0.0)


def test_a_release_leaves_no_holder_and_a_one_second_lease() -> None:
    spec = release_spec(Record("a", 15, NOW, NOW, 2), now=NOW)
    assert spec == {"holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": NOW,
                    "renewTime": NOW, "leaseTransitions": 2}
    # whoever comes next takes it at once and counts a transition
    after = next_spec(Record.of({"spec": spec}), identity="b", lease_s=15, now=NOW,
                      expired=expired(Record.of({"spec": spec}), 0.0, 0.0))
    assert after is not None and after["leaseTransitions"] == 3


def test_micro_time_is_rfc3339_with_microseconds() -> None:
    assert micro_time(1767225600.25) == "2026-01-01T00:00:00.250000Z"


def test_settings_from_the_environment() -> None:
    assert ElectionSettings.from_env({}) is None  # no Lease name: standalone
    env = {"MOLSTREAM_LEASE_NAME": "rel", "POD_NAMESPACE": "chem", "POD_NAME": "op-1"}
    settings = ElectionSettings.from_env(env)
    assert settings == ElectionSettings(name="rel", namespace="chem", identity="op-1")
    # no Pod name: the host name and a random suffix, a new one each start
    one = ElectionSettings.from_env({"MOLSTREAM_LEASE_NAME": "rel"}, fallback_namespace="x")
    two = ElectionSettings.from_env({"MOLSTREAM_LEASE_NAME": "rel"}, fallback_namespace="x")
    assert one and two and one.identity != two.identity and one.namespace == "x"
    with pytest.raises(ValueError, match="no namespace for the Lease"):
        ElectionSettings.from_env({"MOLSTREAM_LEASE_NAME": "rel"})
    with pytest.raises(ValueError, match=r"renew deadline \(20s\) < lease duration \(15s\)"):
        ElectionSettings.from_env({**env, "MOLSTREAM_LEASE_RENEW_DEADLINE_S": "20"})


# --- replicas against the real API server -----------------------------------------------------

Start = Callable[..., OperatorProcess]


@pytest.fixture
def start_replica(
    operator_kubeconfig: Path, fetcher_template: Path, kube_namespace: str, topic_prefix: str,
    tmp_path: Path,
) -> Iterator[Start]:
    """``start_replica("op-a", kafka=..., lease_s=6)``: an operator replica named like its Pod,
    electing on the Lease LEASE; all replicas of a test share one Kafka consumer group."""
    started: list[OperatorProcess] = []
    group = f"molstream-operator-{secrets.token_hex(4)}"

    def start(identity: str, *, kafka: str | None = None, lease_s: float = 6,
              renew_s: float = 4, retry_s: float = 0.5,
              kubeconfig: Path | None = None) -> OperatorProcess:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOLSTREAM_")}
        env.update(
            KUBECONFIG=str(kubeconfig or operator_kubeconfig),
            POD_NAME=identity,
            MOLSTREAM_LEASE_NAME=LEASE,
            MOLSTREAM_LEASE_DURATION_S=str(lease_s),
            MOLSTREAM_LEASE_RENEW_DEADLINE_S=str(renew_s),
            MOLSTREAM_LEASE_RETRY_PERIOD_S=str(retry_s),
            MOLSTREAM_FETCHER_TEMPLATE=str(fetcher_template),
            MOLSTREAM_ALLOWED_HOSTS=ALLOWED_HOSTS,
            MOLSTREAM_KAFKA_BOOTSTRAP=kafka or "",
            MOLSTREAM_TOPIC_PREFIX=topic_prefix,
            MOLSTREAM_OPERATOR_GROUP_ID=group,
            MOLSTREAM_ALLOW_INSECURE_CREDENTIALS="true",
        )
        liveness = f"http://127.0.0.1:{port}/healthz"
        argv = [sys.executable, "-m", "molstream_operator", "-n", kube_namespace,
                "--liveness", liveness, "--log-format", "json"]
        process = OperatorProcess(argv, env, tmp_path / f"{identity}.log", liveness)
        process.group = group  # type: ignore[attr-defined]
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


def _lease(admin: Kube, namespace: str) -> dict[str, Any] | None:
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{LEASE}"
    try:
        return admin.request("GET", path)
    except Exception:  # noqa: BLE001 - not created yet
        return None


def _holder(admin: Kube, namespace: str) -> str:
    lease = _lease(admin, namespace)
    return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")


def _wait_holder(ns: Namespace, identity: str, timeout: float = 30) -> dict[str, Any]:
    wait_for(lambda: _holder(ns.admin, ns.name) == identity, what=f"{identity} holding the Lease",
             timeout=timeout, context=ns.context)
    lease = _lease(ns.admin, ns.name)
    assert lease is not None
    return lease


def _take_over(ns: Namespace, holder: str) -> bool:
    """Write ``holder`` into the Lease as another candidate would (False: it changed since
    read, the leader renewed it; read again)."""
    lease = _lease(ns.admin, ns.name)
    assert lease is not None
    now = micro_time(time.time())
    lease["spec"].update(holderIdentity=holder, acquireTime=now, renewTime=now,
                         leaseDurationSeconds=300)
    path = f"/apis/coordination.k8s.io/v1/namespaces/{ns.name}/leases/{LEASE}"
    try:
        ns.admin.request("PUT", path, body=lease)
    except ApiError as exc:
        if exc.status == 409:
            return False
        raise
    return True


def _leadership(process: OperatorProcess) -> dict[str, Any]:
    return (process.healthy() or {}).get("leadership") or {}


def _wait_seen(process: OperatorProcess, holder: str) -> None:
    """Until a standby's endpoint names ``holder`` (it answers before its first read)."""
    wait_for(lambda: _leadership(process).get("holder") == holder,
             what=f"the standby seeing {holder} lead", context=process.tail)


def _handled(process: OperatorProcess) -> list[str]:
    """What a replica's log says it acted on: kopf's handler lines and the event consumer's."""
    lines = []
    for line in process.log().splitlines():
        try:
            message = str(json.loads(line).get("message", ""))
        except ValueError:
            message = line
        if message.startswith(("Handler ", "Reading events", "Event ")):
            lines.append(message)
    return lines


def _group_members(bootstrap: str, group: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return len(admin.describe_groups([group])[group]["members"])
    finally:
        admin.close()


TABLES = {"activity": 975, "molecule": 610, "target": 45}


@pytest.mark.kafka
def test_the_standby_takes_over_a_run_when_the_leader_is_killed(
    ns: Namespace, start_replica: Start, kafka_bootstrap: str, publish: Publisher
) -> None:
    a = start_replica("op-a", kafka=kafka_bootstrap)
    _wait_holder(ns, "op-a")
    b = start_replica("op-b", kafka=kafka_bootstrap)
    ns.context = lambda: f"{a.tail(20)}\n{b.tail(20)}"
    wait_for(lambda: (a.healthy() or {}).get("events", {}).get("connected"),
             what="the leader's event consumer connected", context=ns.context)
    # the standby is alive, knows who leads, and runs neither kopf nor a consumer
    _wait_seen(b, "op-a")
    assert _leadership(b) == {"leader": False, "identity": "op-b", "holder": "op-a",
                              "lease": f"{ns.name}/{LEASE}"}
    assert "events" not in (b.healthy() or {})
    assert _leadership(a)["leader"] is True

    ns.apply([secret("pw"), ingestrequest("ha")])
    ns.wait_jobs(1)
    ingest = ns.wait_status("ha", lambda s: s.get("ingestId"), "an ingest id")["ingestId"]
    ns.job_status("ha-run-1", "active")
    ns.wait_phase("ha", "Fetching")
    publish("publishing", ingest, rows_total=1000, rows_published=390, rows_rejected=10)
    ns.wait_status("ha", lambda s: s.get("progress") == "rows 400/1000", "fetch progress")
    assert _group_members(kafka_bootstrap, a.group) == 1  # type: ignore[attr-defined]
    assert _handled(b) == [], "the standby acted"

    a.stop(signal.SIGKILL)  # mid-run: no release, no leaving the consumer group
    publish("published", ingest, rows_total=1000, rows_published=975, rows_rejected=25,
            batches=10)  # while nobody leads: must not be lost
    lease = _wait_holder(ns, "op-b", timeout=60)
    assert lease["spec"]["leaseTransitions"] == 1
    ns.wait_phase("ha", "Ingesting", timeout=90)  # the consumer group handed over to op-b
    ns.job_status("ha-run-1", "complete")
    publish("completed", ingest, rows_published=975, rows_written=975, rows_rejected=25,
            duration_s=12.5, tables=TABLES, report_path=f"/reports/{ingest}.json")
    status = ns.wait_phase("ha", "Succeeded", timeout=60)
    assert (status["run"], status["ingestId"]) == (1, ingest)
    assert (status["rowsWritten"], status["rowsRejected"], status["report"]) == (975, 25, TABLES)
    assert [job["metadata"]["name"] for job in ns.jobs()] == ["ha-run-1"]
    assert [e["reason"] for e in ns.events("ha")].count("RunStarted") == 1


def test_a_graceful_stop_hands_the_lease_over_at_once(
    ns: Namespace, start_replica: Start
) -> None:
    # a lease far longer than the wait below: only a release lets op-b in within it
    a = start_replica("op-a", lease_s=300, renew_s=200, retry_s=0.5)
    _wait_holder(ns, "op-a")
    b = start_replica("op-b", lease_s=300, renew_s=200, retry_s=0.5)
    ns.context = lambda: f"{a.tail(20)}\n{b.tail(20)}"
    _wait_seen(b, "op-a")

    a.stop(signal.SIGTERM)
    assert a.process is not None and a.process.returncode == 0, a.tail()
    assert "Released the Lease" in a.log()
    _wait_holder(ns, "op-b", timeout=60)
    wait_for(lambda: _leadership(b).get("leader"), what="op-b leading", context=ns.context)
    ns.apply([secret("pw"), ingestrequest("after")])  # op-b acts now
    ns.wait_jobs(1)
    ns.wait_phase("after", "Pending")


def test_a_leader_whose_lease_is_taken_over_stops_acting(
    ns: Namespace, start_replica: Start
) -> None:
    a = start_replica("op-a", lease_s=300, renew_s=200, retry_s=0.5)
    _wait_holder(ns, "op-a")
    b = start_replica("op-b", lease_s=300, renew_s=200, retry_s=0.5)
    ns.context = lambda: f"{a.tail(20)}\n{b.tail(20)}"

    # what a partition looks like from the leader's side: the Lease names someone else
    wait_for(lambda: _take_over(ns, "elsewhere"), what="the Lease written over",
             context=ns.context)
    assert a.process is not None
    wait_for(lambda: a.process.poll() is not None, what="op-a exiting", context=ns.context)
    assert a.process.returncode == 1
    errors = [json.loads(line) for line in a.log().splitlines()
              if line.startswith("{") and '"error"' in line.lower()]
    assert any("Lost the leadership: the Lease" in e["message"] and "elsewhere" in e["message"]
               for e in errors), a.tail()
    # nobody wins it back before it expires, and the standby stays one
    assert _holder(ns.admin, ns.name) == "elsewhere"
    _wait_seen(b, "elsewhere")
    assert _leadership(b)["leader"] is False
    # a standby stops at once on SIGTERM
    b.stop(signal.SIGTERM)
    assert b.process is not None and b.process.returncode == 0, b.tail()


class Relay:
    """A TCP relay in front of the API server that can fall silent, as a network partition
    does: connections stay open, new ones are accepted, nothing gets through any more."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.silent = threading.Event()
        self._sockets: list[socket.socket] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self._sockets.append(client)
            if self.silent.is_set():
                continue
            upstream = socket.create_connection(self.target)
            self._sockets.append(upstream)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while (data := src.recv(65536)) and not self.silent.is_set():
                dst.sendall(data)
        except OSError:
            pass

    def kubeconfig(self, path: Path, into: Path) -> Path:
        """``path`` with its server reached through the relay."""
        config = yaml.safe_load(path.read_text())
        for cluster in config["clusters"]:
            cluster["cluster"]["server"] = f"https://127.0.0.1:{self.port}"
        into.write_text(yaml.safe_dump(config))
        into.chmod(0o600)
        return into

    def close(self) -> None:
        self._server.close()
        for sock in self._sockets:
            sock.close()


def test_a_leader_cut_off_from_the_api_server_stops_before_its_lease_runs_out(
    ns: Namespace, start_replica: Start, operator_kubeconfig: Path, tmp_path: Path
) -> None:
    server = urlsplit(yaml.safe_load(operator_kubeconfig.read_text())
                      ["clusters"][0]["cluster"]["server"])
    relay = Relay((server.hostname or "127.0.0.1", server.port or 443))
    try:
        a = start_replica("op-a", kubeconfig=relay.kubeconfig(operator_kubeconfig,
                                                              tmp_path / "relayed.kubeconfig"))
        _wait_holder(ns, "op-a")
        b = start_replica("op-b")
        ns.context = lambda: f"{a.tail(20)}\n{b.tail(20)}"
        relay.silent.set()  # op-a's requests hang from now on; op-b's go through
        _wait_holder(ns, "op-b", timeout=60)
        # op-a stopped at its renew deadline (4 s), before op-b could take over (6 s)
        assert a.process is not None and a.process.poll() is not None, "op-a still runs"
        assert a.process.returncode == 1
        assert "Lost the leadership: the Lease" in a.log() and "not renewed for 4s" in a.log()
    finally:
        relay.close()


# --- the chart -----------------------------------------------------------------------------------

CHART = Path(__file__).resolve().parents[2] / "charts" / "molstream"


def _render(helm: Any, *sets: str) -> list[dict[str, Any]]:
    args = ["template", "rel", CHART, "--namespace", "chem"]
    for item in sets:
        args += ["--set", item]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


def _lease_rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    (role,) = [d for d in docs
               if d["kind"] == "Role" and d["metadata"]["name"].endswith("-operator")]
    return [r for r in role["rules"] if "leases" in r["resources"]]


@pytest.mark.parametrize("replicas", [1, 2])
def test_the_chart_elects_on_the_release_s_lease(helm: Any, replicas: int) -> None:
    docs = _render(helm, f"operator.replicas={replicas}")
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"
                     and d["metadata"]["name"].endswith("-operator")]
    assert deployment["spec"]["replicas"] == replicas
    strategy = deployment["spec"]["strategy"]
    if replicas == 1:
        assert strategy == {"type": "Recreate"}
    else:  # a new Pod (a standby) up before an old one goes
        assert strategy == {"type": "RollingUpdate",
                            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    lease = env["MOLSTREAM_LEASE_NAME"]["value"]
    assert lease == "rel-molstream"  # the release's fullname: one Lease per release
    # get and update on that Lease only; create cannot be narrowed by name
    assert sorted((tuple(r.get("resourceNames") or ()), tuple(r["verbs"]))
                  for r in _lease_rules(docs)) == [((), ("create",)), ((lease,), ("get", "update"))]


def test_the_chart_s_narrowed_lease_rules_are_enough(
    ns: Namespace, helm: Any, kubectl: Any, start_replica: Start
) -> None:
    """The operator elects itself under the chart's Lease rules (named get/update, create)
    in place of operator/rbac-rules.yaml's."""
    rules = [r for r in yaml.safe_load(RBAC_RULES.read_text()) if "leases" not in r["resources"]]
    rules += _lease_rules(_render(helm, f"fullnameOverride={LEASE}"))
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "molstream-operator"}, "rules": rules}
    # (start_replica's kubeconfig fixture made the Role and its binding: narrowed here)
    kubectl("apply", "-f", "-", namespace=ns.name, input=yaml.safe_dump(role))
    a = start_replica("op-a")
    _wait_holder(ns, "op-a")
    a.stop(signal.SIGTERM)
    assert a.process is not None and a.process.returncode == 0, a.tail()
    assert _holder(ns.admin, ns.name) == ""  # released: an update under the named rule
