"""Follow the fetcher Jobs (labelled ``molstream.io/ingestrequest``) and patch their parent."""

from __future__ import annotations

from typing import Any

import kopf

from .kube import TransientApiError
from .manifests import LABEL_IR
from .service import IngestService

__all__ = ["job_changed"]


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_IR: kopf.PRESENT})
def job_changed(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:  # noqa: A002
    if type == "DELETED":
        return
    service: IngestService = memo.service
    try:
        service.on_job(body)
    except TransientApiError as exc:
        # Event handlers are not retried; the next change of the Job brings the status along.
        kopf.warn(body, reason="StatusNotUpdated", message=f"Kubernetes API: {exc}")
