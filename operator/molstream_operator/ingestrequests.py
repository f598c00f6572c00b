"""Handlers of IngestRequests: create, resume (operator restart) and update (spec, annotations).

All three reconcile the same way; the service decides whether a run must start (the first one,
or a new value of the ``molstream.io/rerun`` annotation) and makes sure its Job or CronJob exists.
"""

from __future__ import annotations

from typing import Any

import kopf

from . import metrics
from .kube import TransientApiError
from .models import GROUP, PLURAL, VERSION
from .service import IngestService, RetryLater

__all__ = ["reconcile", "track_phase"]


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def reconcile(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    service: IngestService = memo.service
    metrics.RECONCILES.labels("ingestrequest").inc()
    try:
        service.reconcile(body)
    except RetryLater as exc:
        metrics.RECONCILE_ERRORS.labels("ingestrequest").inc()
        raise kopf.TemporaryError(str(exc), delay=exc.delay) from None
    except TransientApiError as exc:
        metrics.RECONCILE_ERRORS.labels("ingestrequest").inc()
        raise kopf.TemporaryError(f"Kubernetes API: {exc}", delay=5) from None
    except Exception:
        metrics.RECONCILE_ERRORS.labels("ingestrequest").inc()
        raise


@kopf.on.event(GROUP, VERSION, PLURAL)
def track_phase(type: str | None, body: kopf.Body, **_: Any) -> None:  # noqa: A002
    """Every watch event of an IngestRequest, its status changes included: its phase, for the
    molstream_operator_ingestrequests gauge."""
    meta = body.get("metadata") or {}
    if type == "DELETED":
        metrics.INGESTREQUESTS.gone(meta.get("namespace", ""), meta.get("name", ""))
    else:
        phase = (body.get("status") or {}).get("phase")
        metrics.INGESTREQUESTS.seen(meta.get("namespace", ""), meta.get("name", ""), phase)
