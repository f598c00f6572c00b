"""The history of scheduled runs: the finished Jobs an IngestRequest keeps.

Like a CronJob's ``successfulJobsHistoryLimit`` (default 3) and ``failedJobsHistoryLimit``
(default 1), from the IngestRequest's spec fields of the same names: once a scheduled run's Job
finishes, the operator deletes the older finished Jobs of that IngestRequest beyond the limits
(propagationPolicy Background: their Pods go with them). The CronJob carries the same limits,
so its controller prunes the same Jobs; whichever comes first deletes them. One-off runs' Jobs
are deleted by the TTL controller instead (the fetcher template's ``ttlSecondsAfterFinished``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from .kube import Kube
from .manifests import (
    ANNOTATION_IR,
    FAILED_JOBS_HISTORY_LIMIT,
    LABEL_IR,
    LABEL_SCHEDULED,
    SUCCESSFUL_JOBS_HISTORY_LIMIT,
    label_value,
)
from .stopping import delete_job

__all__ = ["HISTORY_MAX", "history_limits", "prune_scheduled_jobs", "to_delete"]

#: The largest limit the CRD accepts.
HISTORY_MAX = 100


def _limit(spec: Mapping[str, Any], key: str, default: int) -> int:
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= HISTORY_MAX:
        return default
    return value


def history_limits(spec: Mapping[str, Any] | None) -> tuple[int, int]:
    """(successful, failed) finished Jobs of scheduled runs to keep, from the raw spec."""
    spec = spec or {}
    return (
        _limit(spec, "successfulJobsHistoryLimit", SUCCESSFUL_JOBS_HISTORY_LIMIT),
        _limit(spec, "failedJobsHistoryLimit", FAILED_JOBS_HISTORY_LIMIT),
    )


def _outcome(job: Mapping[str, Any]) -> str | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return "succeeded"
        if cond.get("type") in ("Failed", "FailureTarget"):
            return "failed"
    return None


def to_delete(jobs: list[Mapping[str, Any]], limits: tuple[int, int]) -> list[str]:
    """Names of the finished Jobs beyond the limits, the oldest first."""
    doomed: list[str] = []
    for outcome, keep in zip(("succeeded", "failed"), limits, strict=True):
        finished = sorted(
            (
                (str(job["metadata"].get("creationTimestamp") or ""), job["metadata"]["name"])
                for job in jobs
                if _outcome(job) == outcome and not job["metadata"].get("deletionTimestamp")
            ),
            reverse=True,
        )
        doomed += [name for _, name in reversed(finished[keep:])]
    return doomed


def prune_scheduled_jobs(
    kube: Kube, namespace: str, name: str, limits: tuple[int, int]
) -> list[str]:
    """Delete the finished scheduled Jobs of IngestRequest ``name`` beyond ``limits``."""
    selector = f"{LABEL_IR}={label_value(name)},{LABEL_SCHEDULED}=true"
    listed = kube.request(
        "GET",
        f"/apis/batch/v1/namespaces/{quote(namespace, safe='')}/jobs",
        query={"labelSelector": selector},
    )
    jobs = [
        job
        for job in listed.get("items") or []
        # the label may be a shortened name: the annotation names the IngestRequest exactly
        if ((job.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_IR, name) == name
    ]
    doomed = to_delete(jobs, limits)
    for job_name in doomed:
        delete_job(kube, namespace, job_name)  # (gone already: the CronJob controller was first)
    return doomed
