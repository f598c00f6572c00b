"""An IngestRequest whose fetcher Pod cannot start says why, as soon as the kubelet or the
scheduler writes it, and stops saying it once the Pod starts.

Against the real test API server; the test writes the Pod statuses the kubelet and the scheduler
write (neither runs there): waiting reasons ErrImagePull, ImagePullBackOff, InvalidImageName,
CreateContainerConfigError, and PodScheduled False/Unschedulable.
"""

from __future__ import annotations

from typing import Any

import pytest
from fetcher_pods import (
    FETCHER_SA,
    create_pod,
    kubelet_running,
    kubelet_waiting,
    scheduler_unschedulable,
)
from molstream_operator.urls import redact
from operator_harness import IMAGE, Namespace, ingestrequest

pytestmark = pytest.mark.kube

PULL = f'Back-off pulling image "{IMAGE}"'
ERR_PULL = (f'failed to pull and unpack image "{IMAGE}": failed to resolve reference "{IMAGE}": '
            "pull access denied, repository does not exist or may require authorization: "
            "authorization failed: no basic auth credentials")
UNSCHEDULABLE = ("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. "
                 "preemption: 0/3 nodes are available: 3 Preemption is not helpful for "
                 "scheduling.")


def _request(name: str) -> dict[str, Any]:
    """An IngestRequest without credentials: what the Pod needs does not depend on them."""
    return ingestrequest(name, url="https://data.example.org/activities.csv.gz",
                         credentialsSecret=None)


def _started(ns: Namespace, name: str) -> str:
    """The IngestRequest's Job running (as the Job controller says: a Pod active), its Pod."""
    ns.apply([FETCHER_SA, _request(name)])
    (job,) = ns.wait_jobs(1)
    job_name = job["metadata"]["name"]
    pod = create_pod(ns, job_name)
    ns.job_status(job_name, "active")
    ns.wait_phase(name, "Fetching")
    return pod


def _stalled(ns: Namespace, name: str, reason: str) -> dict[str, Any]:
    ns.wait_status(
        name,
        lambda s: any(c["type"] == "Stalled" and c["status"] == "True" and c["reason"] == reason
                      for c in s.get("conditions") or []),
        f"Stalled {reason}",
    )
    return ns.status(name)


def test_an_image_that_cannot_be_pulled_shows_and_clears(
    ns: Namespace, start_operator: Any, kubectl: Any
) -> None:
    ns.context = start_operator().tail
    pod = _started(ns, "private")

    kubelet_waiting(ns, pod, "ErrImagePull", ERR_PULL)
    status = _stalled(ns, "private", "ErrImagePull")
    assert status["phase"] == "Fetching"  # the Job may still start it before its deadline
    # (what looks like a secret in the kubelet's words is redacted, as in every message)
    assert status["message"] == redact(f"fetcher Pod {pod} cannot start: ErrImagePull: {ERR_PULL}")
    assert "pull access denied, repository does not exist" in status["message"]
    assert ns.condition("private", "Stalled")["message"] == status["message"]

    kubelet_waiting(ns, pod, "ImagePullBackOff", PULL)
    status = _stalled(ns, "private", "ImagePullBackOff")
    assert status["message"] == f"fetcher Pod {pod} cannot start: ImagePullBackOff: {PULL}"
    # kubectl waits on it; one Warning Event says it
    kubectl("wait", "--for=condition=Stalled", "ir/private", "--timeout=10s", namespace=ns.name)
    warnings = [e for e in ns.events("private") if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["ErrImagePull"]
    # the other conditions stay as they were
    assert {c["type"] for c in status["conditions"]} == {"Ready", "Complete", "Failed", "Stalled"}
    assert ns.condition("private", "Ready")["status"] == "True"

    kubelet_running(ns, pod)
    status = ns.wait_status(
        "private", lambda s: "cannot start" not in s.get("message", ""), "the message cleared"
    )
    assert status["message"] == f"Job private-run-1 is running: fetcher Pod {pod} started"
    stalled = ns.condition("private", "Stalled")
    assert (stalled["status"], stalled["reason"], stalled["message"]) == (
        "False", "PodStarted", "")
    assert status["phase"] == "Fetching"


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("CreateContainerConfigError", 'couldn\'t find key password in Secret '
                                       '{ns}/molstream-ftp-credentials'),
        ("InvalidImageName", 'Failed to apply default image tag "Registry.test/x:": couldn\'t '
                             "parse image name"),
    ],
)
def test_a_container_that_cannot_be_created_shows(
    ns: Namespace, start_operator: Any, reason: str, message: str
) -> None:
    ns.context = start_operator().tail
    pod = _started(ns, "config")
    message = message.format(ns=ns.name)
    kubelet_waiting(ns, pod, reason, message)
    status = _stalled(ns, "config", reason)
    assert status["message"] == f"fetcher Pod {pod} cannot start: {reason}: {message}"


def test_an_unschedulable_pod_shows_the_schedulers_message(
    ns: Namespace, start_operator: Any
) -> None:
    ns.context = start_operator().tail
    ns.apply([FETCHER_SA, _request("nowhere")])
    (job,) = ns.wait_jobs(1)
    pod = create_pod(ns, job["metadata"]["name"])
    scheduler_unschedulable(ns, pod, UNSCHEDULABLE)
    # still Pending (no Job status yet): the status says why at once
    status = _stalled(ns, "nowhere", "Unschedulable")
    assert status["phase"] == "Pending"
    why = f"fetcher Pod {pod} cannot start: Unschedulable: {UNSCHEDULABLE}"
    assert status["message"] == why
    # the Job controller counts the Pod active: Fetching, and the message still says why
    ns.job_status(job["metadata"]["name"], "active")
    status = ns.wait_phase("nowhere", "Fetching")
    assert status["message"] == why


def test_a_job_that_fails_while_its_pod_cannot_start_says_why(
    ns: Namespace, start_operator: Any
) -> None:
    ns.context = start_operator().tail
    pod = _started(ns, "deadline")
    kubelet_waiting(ns, pod, "ImagePullBackOff", PULL)
    _stalled(ns, "deadline", "ImagePullBackOff")
    ns.job_status("deadline-run-1", "deadline")
    status = ns.wait_phase("deadline", "Failed")
    assert status["message"] == (
        "Job deadline-run-1 failed: Job was active longer than specified deadline "
        f"(fetcher Pod {pod} cannot start: ImagePullBackOff: {PULL})"
    )
    assert ns.condition("deadline", "Failed")["reason"] == "DeadlineExceeded"


# --- unit: reading a Pod, the history's choice ----------------------------------------------------


def _pod(status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "x-run-1-abc", "namespace": "chem",
                         "annotations": {"molstream.io/ingestrequest-name": "x"},
                         "ownerReferences": [{"kind": "Job", "name": "x-run-1",
                                              "controller": True}]},
            "status": status}


def test_read_pod() -> None:
    from molstream_operator.pod_health import read_pod

    crash = read_pod(_pod({"phase": "Running", "containerStatuses": [
        {"name": "fetcher", "state": {"waiting": {"reason": "CrashLoopBackOff",
                                                  "message": "back-off 40s restarting"}},
         "lastState": {"terminated": {"exitCode": 1}}}]}))
    assert (crash.ingestrequest, crash.job, crash.blocked) == (
        "x", "x-run-1", ("CrashLoopBackOff", "back-off 40s restarting"))
    creating = read_pod(_pod({"phase": "Pending", "containerStatuses": [
        {"name": "fetcher", "state": {"waiting": {"reason": "ContainerCreating"}}}]}))
    assert creating.blocked is None and not creating.started  # on its way: nothing to say
    done = read_pod(_pod({"phase": "Failed", "containerStatuses": [
        {"name": "fetcher", "state": {"terminated": {"exitCode": 3}}}]}))
    assert done.terminal and done.started and done.blocked is None


def test_history_deletes_the_oldest_finished_beyond_the_limits() -> None:
    from molstream_operator.history import history_limits, to_delete

    def job(name: str, minute: int, outcome: str | None) -> dict[str, Any]:
        conds = [{"type": outcome, "status": "True"}] if outcome else []
        return {"metadata": {"name": name, "creationTimestamp": f"2026-01-01T03:{minute:02}:00Z"},
                "status": {"conditions": conds}}

    jobs = [job("a", 1, "Complete"), job("b", 2, "Failed"), job("c", 3, "Complete"),
            job("d", 4, "Failed"), job("e", 5, "Complete"), job("f", 6, None)]
    assert to_delete(jobs, (2, 1)) == ["a", "b"]
    assert to_delete(jobs, (0, 0)) == ["a", "c", "e", "b", "d"]
    assert history_limits({}) == (3, 1)
    assert history_limits({"successfulJobsHistoryLimit": 0, "failedJobsHistoryLimit": 5}) == (0, 5)
    assert history_limits({"successfulJobsHistoryLimit": -1}) == (3, 1)
