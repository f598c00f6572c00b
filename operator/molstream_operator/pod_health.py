"""Why a fetcher Pod cannot start, read the way kubectl shows it, and what the IngestRequest's
status says about it.

A Pod that waits on its image (``ErrImagePull``, ``ImagePullBackOff``, ``InvalidImageName``,
``ErrImageNeverPull``), on its configuration (``CreateContainerConfigError``: a missing Secret
or key; ``CreateContainerError``, ``RunContainerError``), that restarts in a loop
(``CrashLoopBackOff``), or that no node takes (``PodScheduled`` False, ``Unschedulable``, with
the scheduler's message) makes the IngestRequest say so as soon as the kubelet or the scheduler
writes it: condition ``Stalled`` True with that reason, and ``message``
``fetcher Pod <pod> cannot start: <reason>: <their message>``. The phase stays what it was
(Pending or Fetching): the Job may still start it before its deadline. When the Pod starts,
``Stalled`` turns False (reason ``PodStarted``) and the message says the Pod started.

Pure functions, like ``status``; the handler is ``jobs.pod_changed``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .manifests import ANNOTATION_IR, LABEL_IR
from .status import Change, Note, Phase, _clip, _condition, _phase, condition

__all__ = [
    "BLOCKING_REASONS",
    "STALLED",
    "PodState",
    "apply_pod",
    "keep_saying_why",
    "read_pod",
    "without_stalled",
]

#: The condition type (kstatus's and Flux's: the object cannot make progress).
STALLED = "Stalled"
#: Waiting reasons of a container that will not start without someone's help.
BLOCKING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "CrashLoopBackOff",
    }
)
_PREFIX = "fetcher Pod "
_CANNOT_START = " cannot start: "


@dataclasses.dataclass(frozen=True, kw_only=True)
class PodState:
    """What the operator reads from a fetcher Pod."""

    name: str
    namespace: str
    ingestrequest: str | None
    job: str | None
    phase: str
    deleting: bool
    #: (reason, message) when the Pod cannot start, else None.
    blocked: tuple[str, str] | None
    #: A container of it runs or has run (the Pod started).
    started: bool

    @property
    def terminal(self) -> bool:
        return self.phase in ("Succeeded", "Failed")


def _job_of(meta: Mapping[str, Any]) -> str | None:
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") == "Job" and owner.get("controller"):
            return str(owner.get("name") or "") or None
    labels = meta.get("labels") or {}
    return labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")


def read_pod(pod: Mapping[str, Any]) -> PodState:
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    blocked: tuple[str, str] | None = None
    started = False
    containers = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    for container in containers:
        state = container.get("state") or {}
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in BLOCKING_REASONS and blocked is None:
            blocked = (str(waiting["reason"]), str(waiting.get("message") or "").strip())
        if state.get("running") or state.get("terminated") or container.get("started"):
            started = True
    if blocked is None:
        for cond in status.get("conditions") or []:
            if (
                cond.get("type") == "PodScheduled"
                and cond.get("status") == "False"
                and cond.get("reason") == "Unschedulable"
            ):
                blocked = ("Unschedulable", str(cond.get("message") or "").strip())
    phase = str(status.get("phase") or "Pending")
    return PodState(
        name=str(meta.get("name") or ""),
        namespace=str(meta.get("namespace") or ""),
        ingestrequest=(meta.get("annotations") or {}).get(ANNOTATION_IR)
        or (meta.get("labels") or {}).get(LABEL_IR),
        job=_job_of(meta),
        phase=phase,
        deleting=bool(meta.get("deletionTimestamp")),
        blocked=blocked,
        started=started or phase in ("Running", "Succeeded"),
    )


def _stalled(
    status: Mapping[str, Any], value: bool, reason: str, message: str, now: str
) -> dict[str, Any]:
    return condition(status, STALLED, value, reason, message,
                     generation=int(status.get("observedGeneration") or 0), now=now)


def _with_stalled(status: Mapping[str, Any], cond: dict[str, Any]) -> list[dict[str, Any]]:
    others = [c for c in status.get("conditions") or [] if c.get("type") != STALLED]
    return [*others, cond]


def without_stalled(status: Mapping[str, Any]) -> dict[str, Any]:
    """``status`` without the Stalled condition (a new run begins)."""
    new = dict(status)
    if any(c.get("type") == STALLED for c in status.get("conditions") or []):
        new["conditions"] = [c for c in status["conditions"] if c.get("type") != STALLED]
    return new


def stalled_message(status: Mapping[str, Any]) -> str | None:
    """The Stalled condition's message while it is True."""
    cond = _condition(status, STALLED)
    return str(cond.get("message") or "") if cond.get("status") == "True" else None


def keep_saying_why(change: Change | None) -> Change | None:
    """A Job change (``status.apply_job``) while the run is Stalled and not over: the message
    keeps saying why the Pod cannot start rather than that the Job runs."""
    if change is None or _phase(change.status) not in (Phase.PENDING, Phase.FETCHING):
        return change
    why = stalled_message(change.status)
    if not why:
        return change
    return Change({**change.status, "message": why}, change.notes)


def apply_pod(status: Mapping[str, Any], pod: PodState, *, now: str) -> Change | None:
    """Follow a Pod of the current run's Job: cannot start → Stalled; started → not Stalled."""
    if not pod.job or status.get("jobName") != pod.job or pod.deleting:
        return None
    if _phase(status) in (Phase.SUCCEEDED, Phase.FAILED):
        return None
    was_stalled = stalled_message(status) is not None
    new = dict(status)
    if pod.blocked is not None and not pod.terminal:
        reason, detail = pod.blocked
        message = _clip(f"{_PREFIX}{pod.name}{_CANNOT_START}{reason}" + (
            f": {detail}" if detail else ""))
        new["conditions"] = _with_stalled(status, _stalled(status, True, reason, message, now))
        new["message"] = message
        if new == dict(status):
            return None
        # One Event when it stalls (the kubelet's own follow every retry of the pull).
        return Change(new, () if was_stalled else (Note("Warning", reason, message),))
    if not was_stalled or not (pod.started or pod.phase == "Succeeded"):
        return None  # a Pod that failed, or one still on its way: the Job decides
    new["conditions"] = _with_stalled(status, _stalled(status, False, "PodStarted", "", now))
    if str(status.get("message") or "").startswith(_PREFIX):
        new["message"] = f"Job {pod.job} is running: fetcher Pod {pod.name} started"
    return Change(new, (Note("Normal", "PodStarted", f"fetcher Pod {pod.name} started"),))
