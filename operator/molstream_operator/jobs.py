"""Follow the fetcher Jobs (labelled ``molstream.io/ingestrequest``) and their Pods, and patch
their parent: a Job's progress and end, a Pod that cannot start (``pod_health``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import kopf

from . import metrics
from .kube import TransientApiError
from .manifests import LABEL_IR
from .service import IngestService

__all__ = ["job_changed", "pod_changed", "watch_fetcher_pods_only"]

#: The fetcher Pods, filtered by the API server (the Pod template's labels).
FETCHER_PODS = f"{LABEL_IR},app.kubernetes.io/component=fetcher"


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_IR: kopf.PRESENT})
def job_changed(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:  # noqa: A002
    if type == "DELETED":
        return
    service: IngestService = memo.service
    metrics.RECONCILES.labels("job").inc()
    # kopf does not retry event handlers: retry here, then leave it to the Job's next change
    # (or to the operator's next start, which lists every Job again).
    _retrying("job", lambda: service.on_job(body), (1, 2, 4, 8),
              lambda exc: kopf.warn(body, reason="StatusNotUpdated",
                                    message=f"Kubernetes API: {exc}"))


@kopf.on.startup()
def watch_fetcher_pods_only(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.watching.label_selectors["v1", "pods"] = FETCHER_PODS


@kopf.on.event("v1", "pods", labels={LABEL_IR: kopf.PRESENT})
def pod_changed(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:  # noqa: A002
    """A fetcher Pod's status changed: the kubelet or the scheduler may say why it cannot start."""
    if type == "DELETED":
        return
    service: IngestService = memo.service
    metrics.RECONCILES.labels("pod").inc()
    _retrying("pod", lambda: service.on_pod(body), (1, 2, 4),
              lambda exc: logging.getLogger(__name__).warning(
                  "Pod %s: status not updated: %s", body.get("metadata", {}).get("name"), exc))


def _retrying(kind: str, call: Callable[[], None], delays: tuple[float, ...],
              give_up: Callable[[TransientApiError], None]) -> None:
    """``call``, tried again after each of ``delays`` seconds while the API server fails it
    transiently; then counted as an error and handed to ``give_up``."""
    for delay in (*delays, None):
        try:
            call()
            return
        except TransientApiError as exc:
            if delay is None:
                metrics.RECONCILE_ERRORS.labels(kind).inc()
                give_up(exc)
                return
            time.sleep(delay)
