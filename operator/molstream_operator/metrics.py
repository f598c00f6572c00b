"""Prometheus metrics of the operator (served like the worker's: molstream.metrics.serve).

IngestRequests by phase come from the watch itself: every event of an IngestRequest (its status
changes included) records its phase, a deletion forgets it, and a scrape counts them.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Iterable

from molstream.metrics import names, serve
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .status import Phase

__all__ = ["OPERATOR", "PHASES", "names", "serve"]

OPERATOR = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=OPERATOR)

RECONCILES = Counter("molstream_operator_reconciles",
                     "Handler runs, per kind of object handled (ingestrequest, job).",
                     ["kind"], registry=OPERATOR)
RECONCILE_ERRORS = Counter("molstream_operator_reconcile_errors",
                           "Handler runs that failed (kopf retries an IngestRequest's).",
                           ["kind"], registry=OPERATOR)
JOBS_CREATED = Counter("molstream_operator_jobs_created",
                       "Fetcher Jobs and CronJobs created.", ["kind"], registry=OPERATOR)
EVENTS = Counter("molstream_operator_events_consumed",
                 "Pipeline events read from the events topic, per type and outcome (applied to a "
                 "status, ignored, malformed).", ["type", "outcome"], registry=OPERATOR)
EVENT_LAG = Histogram("molstream_operator_event_lag_seconds",
                      "From an event's publication (its ts) to the operator handling it.",
                      buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
                      registry=OPERATOR)

# Known label values start at 0: a rate() over them works from the first scrape on.
for _kind in ("ingestrequest", "job"):
    RECONCILES.labels(_kind)
    RECONCILE_ERRORS.labels(_kind)
for _kind in ("job", "cronjob"):
    JOBS_CREATED.labels(_kind)

# A phase for resources the operator has not given a status yet.
NO_PHASE = "None"
PHASES = (NO_PHASE, *(p.value for p in Phase))


class PhaseCollector(Collector):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phases: dict[tuple[str, str], str] = {}

    def seen(self, namespace: str, name: str, phase: str | None) -> None:
        with self._lock:
            self._phases[namespace, name] = phase if phase in PHASES else NO_PHASE

    def gone(self, namespace: str, name: str) -> None:
        with self._lock:
            self._phases.pop((namespace, name), None)

    def collect(self) -> Iterable:
        with self._lock:
            tally = Tally(self._phases.values())
        family = GaugeMetricFamily("molstream_operator_ingestrequests",
                                   "IngestRequests served, per phase.", labels=["phase"])
        for phase in PHASES:
            family.add_metric([phase], tally.get(phase, 0))
        return [family]


INGESTREQUESTS = PhaseCollector()
OPERATOR.register(INGESTREQUESTS)


def event_outcome(outcome: str) -> str:
    """The bounded label of an outcome of IngestService.on_event ("ignored: why" → ignored)."""
    return "applied" if outcome == "applied" else "ignored"
