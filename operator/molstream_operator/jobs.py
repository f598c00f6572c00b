"""Follow the fetcher Jobs (labelled ``molstream.io/ingestrequest``) and patch their parent."""

from __future__ import annotations

import time
from typing import Any

import kopf

from . import metrics
from .kube import TransientApiError
from .manifests import LABEL_IR
from .service import IngestService

__all__ = ["job_changed"]


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
