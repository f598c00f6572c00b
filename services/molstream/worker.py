"""The worker: consume row batches, apply each in one transaction, then commit Kafka offsets.

Offsets are committed only after the database transactions of every message of a poll have
committed, so a crash at any point means redelivery, never loss; redelivery is harmless
because `Applier` recognises batches it has applied. After every batch, end marker and
redelivery, and every SETTLE_EVERY_S for every ingest still open, `Completion.settle` finishes
an ingest that is whole and lets exactly one worker announce it (molstream.completion).

The loop itself only polls and commits: each poll's work (apply, settle, announce) runs on a
thread of its own (molstream.polling), and while it runs long the loop keeps polling with its
partitions paused, so the consumer keeps its group membership through an apply of any length.

Every Kafka call of the loop rides out a broker outage with backoff; one longer than
`kafka_outage_s` ends the worker with `KafkaUnavailable` (the command line: one error line,
exit status 2). Database errors are retried while transient (molstream.dberrors); a batch the
database refuses never stops the partition (molstream.apply).
"""

from __future__ import annotations

import functools
import logging
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from kafka.errors import (
    CommitFailedError,
    FencedInstanceIdError,
    KafkaError,
    RebalanceInProgressError,
)

from . import metrics, pending, report
from .apply import Applied, Applier, Refused
from .cache import IdCache
from .completion import Announcement, Completion, lease_for
from .config import Settings
from .contract import Rejection, reason_class
from .db import create_schema, make_engine
from .dberrors import Kind, classify, describe, is_database_error
from .diskfull import DiskFull
from .health import Health
from .kafka_access import check_access
from .kafka_security import KafkaAccessError, explain_kafka_error, newer_credentials
from .messages import RowBatch, decode
from .polling import Polling, make_consumer
from .progress import Bar
from .publish import Publisher, PublishError, ensure_topics, topic_options

log = logging.getLogger(__name__)

T = TypeVar("T")
PROGRESS_EVERY_S = 1.0
# Ingests left open by a worker that died (or whose last piece another worker applied) are
# settled this often.
SETTLE_EVERY_S = 5.0
# Indexes deferred for a large ingest are rebuilt when it completes, or after this long idle
# (an ingest whose fetcher died never completes).
RESTORE_INDEXES_IDLE_S = 10.0
# A fenced static member learns it only from a refused offset commit (its heartbeats just
# stop): an idle one commits its unchanged offsets this often to find out.
IDLE_COMMIT_S = 5.0
# On SQLite, consecutive row batches of one poll share a transaction up to this many rows
# (see Applier.apply_many); on PostgreSQL each batch keeps its own.
GROUP_ROWS = 100_000


@dataclass
class _Progress:
    last_sent: dict[str, float] = field(default_factory=dict)


class Fenced(Exception):
    """Another worker joined the consumer group under this one's instance id."""


class KafkaUnavailable(Exception):
    """Kafka stayed unreachable for longer than the worker's limit."""


class Worker:
    def __init__(self, settings: Settings, *, show_progress: bool = False,
                 health: Health | None = None) -> None:
        self.settings = settings
        self.health = health or Health(settings.liveness_timeout_s)
        self.engine = make_engine(settings.database_url,
                                  busy_timeout_s=settings.db_busy_timeout_s)
        instance_id = create_schema(self.engine)
        # Rows a bulk ingest held before this worker stopped (molstream.pending): into the
        # table now, not when some ingest next completes
        pending.merge_each(self.engine)
        self.health.database_reached = True
        self.cache = IdCache(settings.redis_url or None, namespace=instance_id)
        self.applier = Applier(self.engine, self.cache)
        metrics.CACHE.watch(lambda: self.cache.stats, redis=bool(settings.redis_url))
        self._lag_partitions: set[int] = set()
        self.completion = Completion(
            self.engine, claimer=settings.worker_instance_id or None,
            lease_s=lease_for(settings.kafka_outage_s),
            mirror_max_retire=settings.mirror_max_retire)
        self._group_rows = GROUP_ROWS if self.engine.dialect.name == "sqlite" else 1
        # Kafka refusing us (login, certificate, ACL) is said at once, not ridden out. (A
        # password file that changed since it was read is read again: the worker uses that.)
        settings = self.settings = replace(settings, kafka_security=check_access(
            settings.kafka_bootstrap, settings.kafka_security,
            topics={settings.topics.rows: ("READ",), settings.topics.rejected: ("WRITE",),
                    settings.topics.events: ("WRITE",)},
            groups=[settings.worker_group]))
        ensure_topics(settings.kafka_bootstrap, settings.topics, **topic_options(settings))
        self.events = Publisher(settings.kafka_bootstrap, settings.topics,
                                client_id="molstream-worker",
                                delivery_timeout_s=settings.kafka_outage_s,
                                security=settings.kafka_security)
        # A full disk is retried like any transient error; this tells the operator why.
        self.full = DiskFull(self.engine, send=self._database_full)
        self.consumer = make_consumer(settings)
        self._polling = Polling(self.consumer, self._poll, self.health)
        self._stop = False
        self._progress = _Progress()
        self._bar = Bar(show_progress, "apply", unit="rows")
        self.completed: list[dict] = []  # reports of the ingests this worker announced
        self.failed: list[Announcement] = []  # ingests this worker announced as failed

    # -- lifecycle ------------------------------------------------------------------------

    def stop(self, *_args) -> None:
        self._stop = True

    def run(self, *, until_complete: Iterable[str] = (), idle_timeout_s: float | None = None
            ) -> None:
        """Consume until stopped (SIGTERM/SIGINT), until the given ingests have finished
        (completed or failed, and announced), or until nothing arrived for `idle_timeout_s`."""
        waiting = set(until_complete)
        signal.signal(signal.SIGTERM, self.stop)
        last_message = last_commit = last_settle = time.monotonic()
        coordinator_lost: float | None = None
        try:
            self._polling.run(self._settle_open)
            while not self._stop:
                messages = self._kafka("poll for batches", self._polling.gather)
                self._polling.turned()
                coordinator_lost = self._check_coordinator(coordinator_lost)
                now = time.monotonic()
                restore = (not messages and self.applier.indexes_deferred
                           and now - last_message > RESTORE_INDEXES_IDLE_S)
                settle = now - last_settle > SETTLE_EVERY_S
                last_settle = now if settle else last_settle
                finished = self._polling.run(functools.partial(
                    self._work, messages, restore=restore, settle=settle, waiting=waiting))
                self._measure_lag()
                now = time.monotonic()
                if messages or (self.settings.worker_instance_id
                                and now - last_commit > IDLE_COMMIT_S):
                    last_commit = now
                    self._commit()  # after the work: offsets of applied batches only
                if messages:
                    last_message = now
                if finished:
                    break
                if idle_timeout_s is not None and now - last_message > idle_timeout_s:
                    break
        finally:
            self.close()

    def _work(self, messages, *, restore: bool, settle: bool, waiting: set[str]) -> bool:
        """One turn's work, on the polling thread; whether the awaited ingests have finished."""
        self._handle_all(messages)
        if restore:
            self._with_retries(self.applier.restore_indexes, what="indexes rebuilt")
        if settle:
            self._settle_open()
        return bool(waiting) and self._all_finished(waiting)

    def close(self) -> None:
        self._bar.__exit__()
        for closer in (self._polling.close, self.consumer.close, self.applier.restore_indexes,
                       self.events.close,
                       self.cache.close, self.engine.dispose):
            try:
                closer()
            except Exception as e:  # closing is best effort
                log.debug("while closing: %s", e)

    # -- messages -------------------------------------------------------------------------

    def _poll(self, timeout_ms: int = 500, max_records: int | None = None) -> dict:
        try:
            return self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        except FencedInstanceIdError:
            raise self._fenced() from None

    def _measure_lag(self) -> None:
        """Consumer lag per assigned partition, from what the last fetches told (the
        partition's high watermark): no request of its own."""
        seen = set()
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            try:
                # timeout 0: a position not known yet (a rebalance) is not asked for here
                at = self.consumer.position(tp, timeout_ms=0) if high is not None else None
            except KafkaError:  # a gauge is not worth a retry, let alone the worker
                at = None
            if at is None:
                continue  # nothing fetched from it yet
            metrics.CONSUMER_LAG.labels(str(tp.partition)).set(max(0, high - at))
            seen.add(tp.partition)
        for gone in self._lag_partitions - seen:
            metrics.CONSUMER_LAG.remove(str(gone))
        self._lag_partitions = seen

    def _check_coordinator(self, lost_since: float | None) -> float | None:
        """A broker that is down makes poll() return nothing rather than fail: the group's
        coordinator, unknown for longer than `kafka_outage_s`, is what tells."""
        if not self.consumer._coordinator.coordinator_unknown():  # noqa: SLF001 - no public API
            return None
        now = time.monotonic()
        lost_since = lost_since or now
        limit = self.settings.kafka_outage_s
        if now - lost_since >= limit:
            raise KafkaUnavailable(
                f"Kafka at {self.settings.kafka_bootstrap} unreachable for {now - lost_since:.0f}"
                f" s (limit MOLSTREAM_KAFKA_OUTAGE_S={limit:g}): no coordinator for consumer "
                f"group {self.settings.worker_group}")
        return lost_since

    def _handle_all(self, messages) -> None:
        """Handle a poll's messages in order; runs of row batches are applied together."""
        group: list[RowBatch] = []
        rows = 0
        for message in messages:
            try:
                decoded = decode(message.value, message.headers)
            except (ValueError, KeyError, TypeError) as e:
                log.error("skipping a message that is not a molstream batch: %s", e)
                continue
            if group and (not isinstance(decoded, RowBatch)
                          or rows + decoded.rows.num_rows > self._group_rows):
                self._apply(group)
                group, rows = [], 0
            if isinstance(decoded, RowBatch):
                group.append(decoded)
                rows += decoded.rows.num_rows
            else:
                self._with_retries(lambda end=decoded: self.applier.record_end(end))
                self._settle(decoded.ingest_id)
        if group:
            self._apply(group)

    def _apply(self, batches: list[RowBatch]) -> None:
        self.full.working_on(batches)
        self._with_retries(lambda: self.applier.plan(batches))
        def apply() -> list:
            with metrics.BATCH_APPLY_SECONDS.time():  # each attempt, not the retries' sleeps
                return self.applier.apply_many(batches, on_rejected=self._publish_rejections)

        results = self._with_retries(apply, what=f"apply of {len(batches)} batches")
        for batch, outcome in zip(batches, results, strict=True):
            _count(outcome)
            if isinstance(outcome, Applied):
                self._bar.update(outcome.rows)
                self._maybe_progress(batch.ingest_id, force=False)
            elif isinstance(outcome, Refused):
                log.error("ingest %s failed: %s", outcome.ingest_id, outcome.reason)
        # Whatever each outcome was (applied, redelivered, refused), the ingest may now be
        # whole, or failed, or left unannounced by a worker that died.
        for ingest_id in dict.fromkeys(b.ingest_id for b in batches):
            self._settle(ingest_id)

    def _publish_rejections(self, ingest_id: str, rejections: list[Rejection]) -> None:
        def send() -> None:
            self.events.send_rejections(ingest_id, rejections)
            self.events.wait_for_acks(self.settings.kafka_outage_s)
        self._kafka("publish the rows the database refused", send)

    # -- completion -----------------------------------------------------------------------

    def _settle(self, ingest_id: str) -> None:
        announcement = self._with_retries(lambda: self.completion.settle(ingest_id))
        if announcement is not None:
            self._announce(announcement)

    def _settle_open(self) -> None:
        self._with_retries(self.completion.sweep)
        for ingest_id in self._with_retries(self.completion.open_ingests):
            self._settle(ingest_id)

    def _announce(self, a: Announcement) -> None:
        if a.status == "completed":
            self._with_retries(self.applier.restore_indexes)  # before anyone hears it is done
            self._maybe_progress(a.ingest_id, force=True)
            rep = a.report
            path = report.write_csv(rep, self.settings.reports_dir)
            if not self._renewed(a):
                return
            self._send_event("completed", a.ingest_id, rows_published=rep["rows_published"],
                             rows_written=rep["rows_written"], rows_rejected=rep["rows_rejected"],
                             duration_s=rep["duration_s"], tables=rep["tables"],
                             report_path=str(path),
                             **({"mirror": rep["mirror"]} if "mirror" in rep else {}))
            log.info("ingest %s completed: %s rows written, %s rejected, report %s",
                     a.ingest_id, rep["rows_written"], rep["rows_rejected"], path)
        else:
            if not self._renewed(a):
                return
            self._send_event("failed", a.ingest_id, stage="apply", reason=a.failure or "")
            log.error("ingest %s failed: %s", a.ingest_id, a.failure)
        self._with_retries(lambda: self.completion.announced(a.ingest_id))
        metrics.INGESTS.labels(a.status).inc()
        (self.completed.append(a.report) if a.status == "completed" else self.failed.append(a))

    def _renewed(self, a: Announcement) -> bool:
        """The claim renewed just before the event goes out (the lease runs from here: the
        work before it, indexes rebuilt on SQLite, may have taken longer than a lease)."""
        if self._with_retries(lambda: self.completion.renew(a.ingest_id)):
            return True
        log.warning("ingest %s: another worker took over its announcement; this one leaves it",
                    a.ingest_id)
        return False

    def _database_full(self, ingest_id: str, reason: str, needed_bytes: int) -> None:
        self._kafka("publish the database_full event", lambda: self.events.event(
            "database_full", ingest_id, track=False, reason=reason, needed_bytes=needed_bytes))

    def _send_event(self, kind: str, ingest_id: str, **fields) -> None:
        def send() -> None:
            self.events.event(kind, ingest_id, **fields)
            self.events.wait_for_acks(self.settings.kafka_outage_s)
        self._kafka(f"publish the {kind} event", send)

    def _all_finished(self, ingest_ids: set[str]) -> bool:
        # Ask the database, not our own announcements: with several workers, another one may
        # have announced it.
        mine = {r["ingest_id"] for r in self.completed} | {a.ingest_id for a in self.failed}
        if ingest_ids <= mine:
            return True
        return self._with_retries(lambda: self.completion.finished(ingest_ids)) == ingest_ids

    def _maybe_progress(self, ingest_id: str, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._progress.last_sent.get(ingest_id, 0.0) < PROGRESS_EVERY_S:
            return
        self._progress.last_sent[ingest_id] = now
        figures = self._with_retries(lambda: self.completion.progress(ingest_id))
        if figures is not None:
            # Progress is advisory: not worth waiting for an ack, nor tracking one.
            self._kafka("publish progress", lambda: self.events.event(
                "progress", ingest_id, track=False, **figures))

    # -- resilience -----------------------------------------------------------------------

    def _commit(self) -> None:
        """Commit the offsets of what was applied, of the partitions still assigned. A group
        rebalancing meanwhile (a worker joined or left) is waited for while the loop keeps
        polling (molstream.polling's rejoin), then the partitions the consumer kept are
        committed. A commit refused because of the rebalance is not an outage: it is given up
        (the batches are in the database; a member that gets them again recognises them)."""
        if not self._polling.rejoin():
            log.info("consumer group %s still rebalancing: offsets committed after the next "
                     "poll", self.settings.worker_group)
        try:
            self._kafka("commit offsets", lambda: self.consumer.commit(timeout_ms=10_000),
                        retry_on=(KafkaError,),
                        give_up_on=(CommitFailedError, RebalanceInProgressError,
                                    FencedInstanceIdError))
        except FencedInstanceIdError:
            raise self._fenced() from None
        except (CommitFailedError, RebalanceInProgressError) as e:
            # Harmless: the batches are in the database and will be recognised if redelivered.
            log.warning("could not commit Kafka offsets (%s); batches may be redelivered",
                        type(e).__name__ if isinstance(e, RebalanceInProgressError) else e)

    def _fenced(self) -> Fenced:
        s = self.settings
        return Fenced(f"another worker joined {s.worker_group} as instance "
                      f"{s.worker_instance_id!r} (MOLSTREAM_WORKER_INSTANCE_ID): this one stops; "
                      "give each running worker an id of its own")

    def _kafka(self, what: str, action: Callable[[], T], *,
               retry_on: tuple[type[BaseException], ...] = (KafkaError, PublishError),
               give_up_on: tuple[type[BaseException], ...] = (FencedInstanceIdError,)) -> T:
        """`action`, retried with backoff while Kafka is unreachable, for up to
        `kafka_outage_s`; then KafkaUnavailable. A rebalance (RebalanceInProgressError) is
        never an outage: it is raised at once."""
        delay, started = 0.5, time.monotonic()  # the first attempt may itself wait long
        while True:
            try:
                return action()
            except give_up_on:
                raise
            except RebalanceInProgressError:  # the group's doing, not an outage: the caller's
                raise
            except retry_on as e:
                if refusal := _refusal(e, self.settings):  # no wait mends it
                    if newer_credentials(e, self.settings.kafka_security):  # a restart may
                        raise KafkaUnavailable(
                            f"{refusal}; the password file holds another password by now: a "
                            "new start logs in with it") from None
                    raise KafkaAccessError(refusal) from None
                now = time.monotonic()
                limit = self.settings.kafka_outage_s
                if self._stop or now - started >= limit:
                    raise KafkaUnavailable(
                        f"Kafka at {self.settings.kafka_bootstrap} unreachable for "
                        f"{now - started:.0f} s (limit MOLSTREAM_KAFKA_OUTAGE_S={limit:g}) "
                        f"while trying to {what}: {e}") from None
                log.warning("Kafka unavailable while trying to %s (%s); retrying in %.1fs",
                            what, e, delay)
                # A retry is a turn of the loop for liveness: the outage is bounded here, by
                # kafka_outage_s (exit 2, its own line), not by MOLSTREAM_LIVENESS_TIMEOUT_S.
                self.health.turned()
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _with_retries(self, action: Callable[[], T], *, what: str = "database work") -> T:
        """`action`, retried with backoff while the database's error is transient (each
        attempt one operation of the worker's liveness)."""
        delay = 0.5
        while True:
            try:
                with self.health.operation(what):
                    result = action()
                if self.full.cleared():  # the operator hears it from the progress
                    for ingest_id in self.full.ingests:
                        self._maybe_progress(ingest_id, force=True)
                return result
            except Exception as e:
                if (not is_database_error(e) or classify(e) is not Kind.TRANSIENT
                        or self._stop):
                    raise
                metrics.DATABASE_ERRORS.labels(Kind.TRANSIENT.value).inc()
                if not self.full.noticed(e):  # a full disk is said in its own words
                    log.warning("database busy or unavailable (%s); retrying in %.1fs",
                                describe(e), delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)


def _refusal(error: BaseException, settings: Settings) -> str | None:
    """Kafka's refusal of this worker (molstream.kafka_security) in one line, else None."""
    if isinstance(error, PublishError):
        return str(error) if error.permanent else None
    return explain_kafka_error(error, settings.kafka_security, bootstrap=settings.kafka_bootstrap)


def _count(outcome) -> None:
    """One batch's outcome in the worker's metrics."""
    if isinstance(outcome, Applied):
        metrics.BATCHES_APPLIED.inc()
        metrics.ROWS_APPLIED.inc(outcome.rows)
        for table, n in outcome.written.items():
            metrics.ROWS_WRITTEN.labels(table).inc(n)
        for r in outcome.rejected:
            metrics.ROWS_REFUSED.labels(reason_class(r.reason)).inc()
    elif outcome is None:  # applied before, or of an ingest that has failed: nothing changed
        metrics.BATCHES_REDELIVERED.inc()
