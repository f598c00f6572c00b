"""Playing the CronJob controller, the Job controller, the scheduler and the kubelet for the
fetcher Jobs and Pods (none of them runs beside the test API server): a Job made from a CronJob's
jobTemplate, a Pod made from a Job's template, its status written through the status subresource
in the shapes they write."""

from __future__ import annotations

import secrets
import time
from typing import Any

from molstream_operator.status import format_time
from operator_harness import Namespace

FETCHER_SA = {"apiVersion": "v1", "kind": "ServiceAccount",
              "metadata": {"name": "molstream-fetcher"}}


def create_scheduled_job(ns: Namespace, cronjob: str, minutes: int) -> str:
    """A Job of CronJob ``cronjob`` as the CronJob controller makes it from its jobTemplate,
    named ``<cronjob>-<minutes>`` (the scheduled time in minutes); its name."""
    body = ns.admin.get_cronjob(ns.name, cronjob)
    assert body is not None, f"CronJob {cronjob} is gone"
    template = body["spec"]["jobTemplate"]
    name = f"{cronjob}-{minutes}"
    ns.admin.create({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": ns.name,
            "labels": template["metadata"]["labels"],
            "annotations": template["metadata"]["annotations"],
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": cronjob,
                                 "uid": body["metadata"]["uid"], "controller": True}],
        },
        "spec": template["spec"],
    })
    return name


def create_pod(ns: Namespace, job_name: str) -> str:
    """A Pod of Job ``job_name`` as the Job controller makes it (labels, owner); its name."""
    job = ns.admin.get_job(ns.name, job_name)
    assert job is not None, f"Job {job_name} not found"
    template = job["spec"]["template"]
    name = f"{job_name}-{secrets.token_hex(3)}"
    uid = job["metadata"]["uid"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns.name,
            "labels": {
                **template["metadata"]["labels"],
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": job_name,
                "controller-uid": uid,
                "job-name": job_name,
            },
            "annotations": template["metadata"].get("annotations") or {},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": job_name,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": template["spec"],
    }
    ns.admin.request("POST", f"/api/v1/namespaces/{ns.name}/pods", body=pod)
    return name


def _now() -> str:
    return format_time(time.time())


def _conditions(scheduled: bool, *, message: str = "", ready: bool = False) -> list[dict]:
    now = _now()
    if not scheduled:
        return [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": message, "lastProbeTime": None, "lastTransitionTime": now}]
    flag = "True" if ready else "False"
    unready = {} if ready else {"reason": "ContainersNotReady",
                                "message": "containers with unready status: [fetcher]"}
    return [
        {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": None,
         "lastTransitionTime": now},
        {"type": "Initialized", "status": "True", "lastProbeTime": None,
         "lastTransitionTime": now},
        {"type": "Ready", "status": flag, "lastProbeTime": None, "lastTransitionTime": now,
         **unready},
        {"type": "ContainersReady", "status": flag, "lastProbeTime": None,
         "lastTransitionTime": now, **unready},
        {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
         "lastTransitionTime": now},
    ]


def _container(ns: Namespace, pod: str, state: dict, *, ready: bool = False) -> dict:
    body = ns.admin.request("GET", f"/api/v1/namespaces/{ns.name}/pods/{pod}")
    image = body["spec"]["containers"][0]["image"]
    return {
        "name": "fetcher",
        "image": image,
        "imageID": "" if "waiting" in state else f"{image}@sha256:{'0' * 64}",
        "ready": ready,
        "restartCount": 0,
        "started": "running" in state,
        "state": state,
        "lastState": {},
        **({} if "waiting" in state else {"containerID": f"containerd://{'1' * 64}"}),
    }


def _write(ns: Namespace, pod: str, status: dict) -> None:
    ns.admin.request(
        "PATCH",
        f"/api/v1/namespaces/{ns.name}/pods/{pod}/status",
        body={"status": status},
        content_type="application/merge-patch+json",
    )


def _bound(ns: Namespace, pod: str) -> dict:
    return {"phase": "Pending", "hostIP": "10.0.0.5", "hostIPs": [{"ip": "10.0.0.5"}],
            "startTime": _now(), "qosClass": "Burstable"}


def kubelet_waiting(ns: Namespace, pod: str, reason: str, message: str) -> None:
    """The kubelet: the container waits (ErrImagePull, ImagePullBackOff, ...)."""
    state = {"waiting": {"reason": reason, "message": message}}
    _write(ns, pod, {**_bound(ns, pod), "conditions": _conditions(True),
                     "containerStatuses": [_container(ns, pod, state)]})


def kubelet_running(ns: Namespace, pod: str) -> None:
    state = {"running": {"startedAt": _now()}}
    _write(ns, pod, {**_bound(ns, pod), "phase": "Running", "podIP": "10.244.0.7",
                     "podIPs": [{"ip": "10.244.0.7"}],
                     "conditions": _conditions(True, ready=True),
                     "containerStatuses": [_container(ns, pod, state, ready=True)]})


def kubelet_terminated(ns: Namespace, pod: str, exit_code: int, message: str) -> None:
    """The kubelet: the container exited; ``message`` is its termination message (with
    FallbackToLogsOnError: the log's last lines)."""
    state = {"terminated": {"exitCode": exit_code, "reason": "Error", "message": message,
                            "startedAt": _now(), "finishedAt": _now(),
                            "containerID": f"containerd://{'1' * 64}"}}
    _write(ns, pod, {**_bound(ns, pod), "phase": "Failed", "podIP": "10.244.0.7",
                     "podIPs": [{"ip": "10.244.0.7"}],
                     "conditions": _conditions(True),
                     "containerStatuses": [_container(ns, pod, state)]})


def scheduler_unschedulable(ns: Namespace, pod: str, message: str) -> None:
    """The scheduler: no node takes the Pod."""
    _write(ns, pod, {"phase": "Pending", "conditions": _conditions(False, message=message)})


def job_failed_by_policy(ns: Namespace, job: str, pod: str, exit_code: int,
                         *, failed: bool) -> None:
    """The Job controller when a FailJob rule of the podFailurePolicy matched: FailureTarget at
    once, Failed once the Pods are gone (``failed``)."""
    now = _now()
    message = (f"Container fetcher for pod {ns.name}/{pod} failed with exit code {exit_code} "
               "matching FailJob rule at index 0")
    current = ns.admin.get_job(ns.name, job)
    assert current is not None
    started = (current.get("status") or {}).get("startTime") or now

    def cond(kind: str) -> dict:
        return {"type": kind, "status": "True", "reason": "PodFailurePolicy", "message": message,
                "lastProbeTime": now, "lastTransitionTime": now}

    status: dict[str, Any] = {"active": 0 if failed else 1, "startTime": started,
                              "conditions": [cond("FailureTarget")]}
    if failed:
        status.update(failed=1, conditions=[cond("FailureTarget"), cond("Failed")])
    ns.admin.request(
        "PATCH",
        f"/apis/batch/v1/namespaces/{ns.name}/jobs/{job}/status",
        body={"status": status},
        content_type="application/merge-patch+json",
    )
