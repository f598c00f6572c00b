"""Why a fetcher Job failed, as the IngestRequest says it.

* The Job controller writes ``FailureTarget`` as soon as it has decided that a Job fails (before
  its Pods are gone and ``Failed`` is written): the run is Failed from then on.
* A failure by the Job's podFailurePolicy (reason ``PodFailurePolicy``) is the fetcher's
  permanent error (``molstream.cli.EXIT_PERMANENT``): the run fails at once with reason
  ``PermanentError`` and the fetcher's own last ``error:`` line, read from the Pod's termination
  message (the container's ``terminationMessagePolicy`` is ``FallbackToLogsOnError``).
* A Job that failed while its Pod could not start (its deadline passed in ``ImagePullBackOff``)
  says that too.
* A fetcher that ended because Kafka's log volume is full (molstream.kafka_full: its error
  line says KAFKA_FULL_PREFIX) fails the run with reason ``KafkaFull``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from .manifests import FETCHER_EXIT_PERMANENT
from .models import JobView
from .pod_health import stalled_message

__all__ = ["PERMANENT", "explain", "fetcher_error", "pod_failure_policy_failed"]

#: The reason of the IngestRequest's Failed condition for a permanent error of the fetcher.
PERMANENT = "PermanentError"
#: ... and for Kafka's full log volume, told by the start of the fetcher's error line.
KAFKA_FULL = "KafkaFull"
KAFKA_FULL_PREFIX = "Kafka's log volume is full"
_POLICY = "PodFailurePolicy"


def _conditions(job_body: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    return ((job_body.get("status") or {}).get("conditions")) or []


def pod_failure_policy_failed(job_body: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") in ("FailureTarget", "Failed")
        and c.get("status") == "True"
        and c.get("reason") == _POLICY
        for c in _conditions(job_body)
    )


def fetcher_error(pods: Iterable[Mapping[str, Any]]) -> str | None:
    """The fetcher's last ``error: ...`` line, from the termination message of the container
    that exited with the permanent-error status (the newest such Pod first)."""
    found: list[tuple[str, str]] = []
    for pod in pods:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            ended = ((container.get("state") or {}).get("terminated")) or {}
            if container.get("name") != "fetcher":
                continue
            if ended.get("exitCode") != FETCHER_EXIT_PERMANENT:
                continue
            lines = [
                line.strip()[len("error: "):]
                for line in str(ended.get("message") or "").splitlines()
                if line.strip().startswith("error: ")
            ]
            if lines:
                found.append((str(ended.get("finishedAt") or ""), lines[-1]))
    return max(found)[1] if found else None


def explain(
    job: JobView,
    job_body: Mapping[str, Any],
    status: Mapping[str, Any],
    *,
    fetcher_message: str | None = None,
) -> JobView:
    """``job`` as ``status.apply_job`` should see it: failed from FailureTarget on, a
    podFailurePolicy failure as PermanentError, a failure while stalled with its cause."""
    if not job.failure_reason:
        for cond in _conditions(job_body):
            if cond.get("type") == "FailureTarget" and cond.get("status") == "True":
                job = dataclasses.replace(
                    job,
                    failure_reason=cond.get("reason") or "JobFailed",
                    failure_message=cond.get("message") or "",
                )
                break
    if not job.failure_reason:
        return job
    if job.failure_reason == _POLICY:
        detail = fetcher_message or job.failure_message or ""
        if KAFKA_FULL_PREFIX in detail:  # ("publish failed: Kafka's log volume is full: …")
            return dataclasses.replace(job, failure_reason=KAFKA_FULL, failure_message=detail)
        return dataclasses.replace(
            job,
            failure_reason=PERMANENT,
            failure_message=f"the fetcher ended with a permanent error (exit status "
            f"{FETCHER_EXIT_PERMANENT}, not retried)" + (f": {detail}" if detail else ""),
        )
    stalled = stalled_message(status)
    if stalled:
        return dataclasses.replace(
            job, failure_message=f"{job.failure_message or job.failure_reason} ({stalled})"
        )
    return job
