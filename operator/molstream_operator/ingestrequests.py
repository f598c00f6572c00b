"""Handlers of IngestRequests: create, resume (operator restart) and update (spec, annotations).

All three reconcile the same way; the service decides whether a run must start (the first one,
or a new value of the ``molstream.io/rerun`` annotation) and makes sure its Job or CronJob exists.
"""

from __future__ import annotations

from typing import Any

import kopf

from .kube import TransientApiError
from .models import GROUP, PLURAL, VERSION
from .service import IngestService, RetryLater

__all__ = ["reconcile"]


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def reconcile(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    service: IngestService = memo.service
    try:
        service.reconcile(body)
    except RetryLater as exc:
        raise kopf.TemporaryError(str(exc), delay=exc.delay) from None
    except TransientApiError as exc:
        raise kopf.TemporaryError(f"Kubernetes API: {exc}", delay=5) from None
