"""Stopping what runs for an IngestRequest whose spec is refused (a credentialsSecret whose
opt-in label was removed, above all): its unfinished Jobs and its CronJob, whatever spec.suspend
says, since nothing of a refused spec may run."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from .kube import ApiError, Kube
from .manifests import ANNOTATION_IR, LABEL_IR, cronjob_name, label_value
from .models import IngestRequestRef, JobView

__all__ = ["delete_job", "deleting", "owned_by", "stop_children"]

logger = logging.getLogger(__name__)


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    owners = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(owner.get("uid") == uid for owner in owners)


def deleting(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def stop_children(kube: Kube, ref: IngestRequestRef, body: Mapping[str, Any]) -> list[str]:
    """Delete the unfinished Jobs of scheduled runs (a suspended one would hold the
    CronJob's Forbid policy forever), suspend the unfinished Jobs of counter runs (their
    Pods stop) and the CronJob. Returns what is stopped, for the status message."""
    current = dict(body.get("status") or {})
    crons = {current.get("cronJobName")}
    if (body.get("spec") or {}).get("schedule"):
        crons.add(cronjob_name(ref.name))
    crons.discard(None)
    stopped: list[str] = []
    if current.get("jobName") or crons:
        for job_body in _jobs_of(kube, ref, crons):
            job = JobView.from_body(job_body)
            if job.complete or job.failure_reason or deleting(job_body):
                continue
            if job.scheduled:
                delete_job(kube, ref.namespace, job.name)
                stopped.append(f"scheduled Job {job.name} deleted")
            else:
                if not (job_body.get("spec") or {}).get("suspend"):
                    kube.patch_job(ref.namespace, job.name, {"spec": {"suspend": True}})
                stopped.append(f"Job {job.name} suspended")
    for name in sorted(crons):
        cronjob = kube.get_cronjob(ref.namespace, name)
        if cronjob is None or not owned_by(cronjob, ref.uid) or deleting(cronjob):
            continue
        if not (cronjob.get("spec") or {}).get("suspend"):
            kube.patch_cronjob(ref.namespace, name, {"spec": {"suspend": True}})
        stopped.append(f"CronJob {name} suspended")
    if stopped:
        logger.warning("IngestRequest %s/%s: spec refused, %s", ref.namespace, ref.name,
                       ", ".join(stopped))
    return stopped


def _jobs_of(kube: Kube, ref: IngestRequestRef, crons: set[str]) -> list[dict[str, Any]]:
    """The Jobs of ``ref``: its counter runs' (owned by it) and its CronJobs' runs."""
    listed = kube.request(
        "GET",
        f"/apis/batch/v1/namespaces/{quote(ref.namespace, safe='')}/jobs",
        query={"labelSelector": f"{LABEL_IR}={label_value(ref.name)}"},
    )
    jobs = []
    for job in listed.get("items") or []:
        meta = job.get("metadata") or {}
        if (meta.get("annotations") or {}).get(ANNOTATION_IR, ref.name) != ref.name:
            continue  # the label may be a shortened name: the annotation is exact
        owners = meta.get("ownerReferences") or []
        if owned_by(job, ref.uid) or any(
            o.get("kind") == "CronJob" and o.get("name") in crons for o in owners
        ):
            jobs.append(job)
    return jobs


def delete_job(kube: Kube, namespace: str, name: str) -> None:
    """Delete Job ``name`` and its Pods (Background); gone already is fine."""
    try:
        kube.request(
            "DELETE",
            f"/apis/batch/v1/namespaces/{quote(namespace, safe='')}/jobs/"
            f"{quote(name, safe='')}",
            body={"propagationPolicy": "Background"},  # its Pods go with it
        )
    except ApiError as exc:
        if exc.status != 404:
            raise
