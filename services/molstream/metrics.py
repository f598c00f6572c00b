"""Prometheus metrics of the worker and the fetcher, and the `/metrics` endpoint that serves them.

Each role has a registry of its own, so a fetcher does not export the worker's series as zeros
(and the other way round); both add the client library's process collector (memory, CPU, open
files). Names follow Prometheus' conventions: `molstream_` and the role, base units, `_total`
for counters, `_seconds` histograms, and labels whose values are few and known in advance (a
table name, a reason class, a partition number).

Serving is off unless a port is given (MOLSTREAM_METRICS_PORT or `--metrics-port`). A fetcher
is a Kubernetes Job that ends when its ingest does: with `linger_s`, it keeps serving after the
ingest until one scrape has read the final figures, or until `linger_s` has passed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    make_wsgi_app,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from .dberrors import Kind
from .messages import TABLES

log = logging.getLogger(__name__)

# Seconds: a batch applies in milliseconds to seconds, a commit in well under one.
APPLY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)
PUBLISH_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30)


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    return registry


# -- the worker ---------------------------------------------------------------------------------

WORKER = _registry()
ROWS_APPLIED = Counter("molstream_worker_rows_applied", "Rows of newly applied batches.",
                       registry=WORKER)
ROWS_WRITTEN = Counter("molstream_worker_rows_written",
                       "Rows inserted or changed, per table.", ["table"], registry=WORKER)
ROWS_REFUSED = Counter("molstream_worker_rows_rejected",
                       "Rows the database refused, per reason class.", ["reason"],
                       registry=WORKER)
BATCHES_APPLIED = Counter("molstream_worker_batches_applied", "Row batches applied.",
                          registry=WORKER)
BATCHES_REDELIVERED = Counter(
    "molstream_worker_batches_redelivered",
    "Row batches received again after they had been applied (changed nothing).",
    registry=WORKER)
BATCH_APPLY_SECONDS = Histogram(
    "molstream_worker_batch_apply_seconds",
    "Time to apply one transaction's row batches, commit included.",
    buckets=APPLY_BUCKETS, registry=WORKER)
COMMIT_SECONDS = Histogram("molstream_worker_commit_seconds",
                           "Time the database takes to commit one transaction of row batches.",
                           buckets=COMMIT_BUCKETS, registry=WORKER)
INGESTS = Counter("molstream_worker_ingests", "Ingests this worker announced, per outcome.",
                  ["outcome"], registry=WORKER)
DATABASE_ERRORS = Counter(
    "molstream_worker_database_errors",
    "Database errors met, per class: transient (retried), rows (the batch split to find the "
    "refused rows), fatal (the ingest failed).", ["kind"], registry=WORKER)
CONSUMER_LAG = Gauge("molstream_worker_consumer_lag",
                     "Messages of the rows topic not yet consumed, per assigned partition.",
                     ["partition"], registry=WORKER)

# Known label values start at 0: a rate() over them works from the first scrape on.
for _table in TABLES:
    ROWS_WRITTEN.labels(_table)
for _outcome in ("completed", "failed"):
    INGESTS.labels(_outcome)
for _kind in Kind:
    DATABASE_ERRORS.labels(_kind.value)


class CacheCollector(Collector):
    """The id cache's hits and misses per layer, read from its own counters when scraped: the
    process' cache first, then Redis (when there is one), then the database."""

    def __init__(self) -> None:
        self._stats: Callable[[], dict[str, int]] | None = None
        self._redis = False

    def watch(self, stats: Callable[[], dict[str, int]] | None, *, redis: bool) -> None:
        self._stats, self._redis = stats, redis

    def collect(self) -> Iterable:
        family = CounterMetricFamily(
            "molstream_worker_cache_lookups",
            "Dimension id look-ups per cache layer and result (a process miss goes on to "
            "Redis, a Redis miss to the database).", labels=["layer", "result"])
        stats = self._stats() if self._stats else {}
        local, redis, missed = (stats.get(k, 0) for k in ("local", "redis", "miss"))
        family.add_metric(["process", "hit"], local)
        family.add_metric(["process", "miss"], redis + missed)
        if self._redis:
            family.add_metric(["redis", "hit"], redis)
            family.add_metric(["redis", "miss"], missed)
        errors = CounterMetricFamily("molstream_worker_redis_errors",
                                     "Redis calls that failed (the worker goes on without).")
        errors.add_metric([], stats.get("redis_errors", 0))
        return [family, errors]


CACHE = CacheCollector()
WORKER.register(CACHE)

# -- the fetcher --------------------------------------------------------------------------------

FETCHER = _registry()
BYTES_DOWNLOADED = Counter("molstream_fetcher_downloaded_bytes",
                           "Bytes of the source file received.", registry=FETCHER)
DOWNLOAD_RETRIES = Counter("molstream_fetcher_download_retries",
                           "Downloads interrupted and tried again.", registry=FETCHER)
ROWS_READ = Counter("molstream_fetcher_rows_read", "Data rows read from the file.",
                    registry=FETCHER)
ROWS_PUBLISHED = Counter("molstream_fetcher_rows_published", "Rows published to Kafka.",
                         registry=FETCHER)
ROWS_REJECTED = Counter("molstream_fetcher_rows_rejected",
                        "Rows rejected by the fetcher, per reason class.", ["reason"],
                        registry=FETCHER)
PUBLISH_SECONDS = Histogram("molstream_fetcher_publish_seconds",
                            "Time to hand one row batch to the Kafka producer (waiting when "
                            "too many are unacknowledged).", buckets=PUBLISH_BUCKETS,
                            registry=FETCHER)
STAGE_SECONDS = Gauge("molstream_fetcher_stage_seconds",
                      "How long each stage of the ingest took (set when it ends).", ["stage"],
                      registry=FETCHER)
FINISHED = Gauge("molstream_fetcher_finished",
                 "1 once the ingest has ended (completed or failed): the figures are final.",
                 registry=FETCHER)


# -- serving ------------------------------------------------------------------------------------


class _Quiet(WSGIRequestHandler):
    def log_message(self, *_args) -> None:  # one line per scrape is noise
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in progress does not hold the process up


class _Body(list):
    """A response body; the server calls close() once it has sent it (PEP 3333)."""

    def __init__(self, chunks: Iterable[bytes], on_sent: Callable[[], None]) -> None:
        super().__init__(chunks)
        self._on_sent = on_sent

    def close(self) -> None:
        self._on_sent()


class MetricsServer:
    """`/metrics` of `registry` on `host:port` (port 0: any free one), in a daemon thread."""

    def __init__(self, registry: CollectorRegistry, port: int, host: str) -> None:
        self._final_scrapes = 0  # scrapes of final figures, answered
        self._final = False
        self._lock = threading.Lock()  # the figures become final between two scrapes
        self._scraped = threading.Condition()
        app = make_wsgi_app(registry)

        def counted(environ, start_response):
            status = []

            def start(code, headers, exc_info=None):
                status.append(code)
                return start_response(code, headers, exc_info)

            with self._lock:
                final = self._final
                body = app(environ, start)
            scrape = (environ.get("REQUEST_METHOD") == "GET" and status[:1] == ["200 OK"]
                      and environ.get("PATH_INFO") in ("/metrics", "/"))
            return _Body(body, self._sent if final and scrape else lambda: None)

        self._server = make_server(host, port, counted, server_class=_ThreadingServer,
                                   handler_class=_Quiet)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="metrics")
        self._thread.start()

    def _sent(self) -> None:
        with self._scraped:
            self._final_scrapes += 1
            self._scraped.notify_all()

    def finish(self, mark_final: Callable[[], None]) -> None:
        """The figures are final: `mark_final()` records it, between two scrapes."""
        with self._lock:
            mark_final()
            self._final = True

    def linger(self, seconds: float) -> None:
        """Once `finish`ed: keep serving until a scrape of the final figures has been answered,
        or `seconds` have passed."""
        deadline = time.monotonic() + seconds
        with self._scraped:
            while not self._final_scrapes and (left := deadline - time.monotonic()) > 0:
                self._scraped.wait(left)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve(registry: CollectorRegistry, port: int | None) -> MetricsServer | None:
    """Start serving `registry` when a port is set; None (metrics off) otherwise. On every
    interface (a pod's), or on MOLSTREAM_METRICS_HOST's (127.0.0.1 for a local run)."""
    if port is None:
        return None
    host = os.environ.get("MOLSTREAM_METRICS_HOST") or "0.0.0.0"  # noqa: S104 - a pod's
    server = MetricsServer(registry, port, host)
    log.info("metrics on http://%s:%d/metrics", host, server.port)
    return server


def names(registry: CollectorRegistry) -> set[str]:
    """Every series name `registry` can export (a counter's `_total`, a histogram's `_bucket`,
    `_sum` and `_count`...), whether or not a sample has been recorded yet."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
                "summary": ("", "_sum", "_count"), "gauge": ("",), "info": ("_info",)}
    out = set()
    for family in registry.collect():
        out.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return out


__all__ = ["FETCHER", "WORKER", "MetricsServer", "serve", "names"]
