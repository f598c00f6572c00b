"""Follow the fetcher Jobs (labelled ``molstream.io/ingestrequest``) and their Pods, and patch
their parent: a Job's progress and end, a Pod that cannot start (``pod_health``)."""

from __future__ import annotations

import logging
import time
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
    for delay in (1, 2, 4, 8, 0):
        try:
            service.on_job(body)
            return
        except TransientApiError as exc:
            if not delay:
                metrics.RECONCILE_ERRORS.labels("job").inc()
                kopf.warn(body, reason="StatusNotUpdated", message=f"Kubernetes API: {exc}")
                return
            time.sleep(delay)


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
    for delay in (1, 2, 4, 0):
        try:
            service.on_pod(body)
            return
        except TransientApiError as exc:
            if not delay:
                metrics.RECONCILE_ERRORS.labels("pod").inc()
                logging.getLogger(__name__).warning("Pod %s: status not updated: %s",
                                                    body.get("metadata", {}).get("name"), exc)
                return
            time.sleep(delay)
