"""The worker: consume row batches, apply each in one transaction, then commit Kafka offsets.

Offsets are committed only after the database transactions of every message of a poll have
committed, so a crash at any point means redelivery, never loss; redelivery is harmless
because `Applier` recognises batches it has applied. When an ingest's last batch is in (or its
end marker arrives after its batches), exactly one worker writes the report and announces
`completed` on the events topic.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from kafka import KafkaConsumer
from kafka.errors import CommitFailedError, FencedInstanceIdError, KafkaError
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from . import report
from .apply import Applier, finish_if_complete
from .cache import IdCache
from .config import Settings
from .db import IngestRun, create_schema, make_engine
from .messages import RowBatch, decode
from .progress import Bar
from .publish import MAX_MESSAGE_BYTES, Publisher, ensure_topics

log = logging.getLogger(__name__)

_RUN = IngestRun.__table__
PROGRESS_EVERY_S = 1.0
# Indexes deferred for a large ingest are rebuilt when it completes, or after this long idle
# (an ingest whose fetcher died never completes).
RESTORE_INDEXES_IDLE_S = 10.0
# A fenced static member learns it only from a refused offset commit (its heartbeats just
# stop): an idle one commits its unchanged offsets this often to find out.
IDLE_COMMIT_S = 5.0
# On SQLite, consecutive row batches of one poll share a transaction up to this many rows
# (see Applier.apply_many); on PostgreSQL each batch keeps its own.
GROUP_ROWS = 100_000
_RETRYABLE = ("database is locked", "deadlock detected", "could not serialize",
              "server closed the connection", "connection refused", "terminating connection")


@dataclass
class _Progress:
    last_sent: dict[str, float] = field(default_factory=dict)


class Fenced(Exception):
    """Another worker joined the consumer group under this one's instance id."""


class Worker:
    def __init__(self, settings: Settings, *, show_progress: bool = False) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        instance_id = create_schema(self.engine)
        self.cache = IdCache(settings.redis_url or None, namespace=instance_id)
        self.applier = Applier(self.engine, self.cache)
        self._group_rows = GROUP_ROWS if self.engine.dialect.name == "sqlite" else 1
        ensure_topics(settings.kafka_bootstrap, settings.topics,
                      rows_partitions=settings.rows_partitions)
        self.events = Publisher(settings.kafka_bootstrap, settings.topics,
                                client_id="molstream-worker")
        self.consumer = KafkaConsumer(
            settings.topics.rows,
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=settings.worker_group,
            group_instance_id=settings.worker_instance_id or None,
            client_id="molstream-worker",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
            fetch_max_bytes=MAX_MESSAGE_BYTES,  # ~20 typical batches a fetch; more costs memory
            max_poll_records=16,
            max_poll_interval_ms=900_000,  # a locked SQLite file may hold a batch for minutes
            # A killed worker's partitions return to its replacement after this long (heartbeats
            # come from a background thread, so a long transaction does not expire the session).
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
            reconnect_backoff_max_ms=5_000,
        )
        self._stop = False
        self._progress = _Progress()
        self._bar = Bar(show_progress, "apply", unit="rows")
        self.completed: list[dict] = []

    # -- lifecycle ------------------------------------------------------------------------

    def stop(self, *_args) -> None:
        self._stop = True

    def run(self, *, until_complete: Iterable[str] = (), idle_timeout_s: float | None = None
            ) -> None:
        """Consume until stopped (SIGTERM/SIGINT), until the given ingests have completed, or
        until nothing arrived for `idle_timeout_s`."""
        waiting = set(until_complete)
        signal.signal(signal.SIGTERM, self.stop)
        self._announce_pending()
        last_message = last_commit = time.monotonic()
        try:
            while not self._stop:
                try:
                    polled = self.consumer.poll(timeout_ms=500)
                except FencedInstanceIdError:
                    raise self._fenced() from None
                messages = [m for batch in polled.values() for m in batch]
                self._handle_all(messages)
                if messages or (self.settings.worker_instance_id
                                and time.monotonic() - last_commit > IDLE_COMMIT_S):
                    last_commit = time.monotonic()
                    self._commit()
                if messages:
                    last_message = time.monotonic()
                elif (self.applier.indexes_deferred
                      and time.monotonic() - last_message > RESTORE_INDEXES_IDLE_S):
                    self._with_retries(self.applier.restore_indexes)
                if waiting and self._all_completed(waiting):
                    break
                if idle_timeout_s is not None and time.monotonic() - last_message > idle_timeout_s:
                    break
        finally:
            self.close()

    def close(self) -> None:
        self._bar.__exit__()
        for closer in (self.consumer.close, self.applier.restore_indexes, self.events.close,
                       self.cache.close, self.engine.dispose):
            try:
                closer()
            except Exception as e:  # closing is best effort
                log.debug("while closing: %s", e)

    # -- one message ----------------------------------------------------------------------

    def _handle_all(self, messages) -> None:
        """Handle a poll's messages in order; runs of row batches are applied together."""
        group: list[RowBatch] = []
        rows = 0
        for message in messages:
            try:
                decoded = decode(message.value, message.headers)
            except (ValueError, KeyError) as e:
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
                self._finish(decoded.ingest_id)
        if group:
            self._apply(group)

    def _apply(self, batches: list[RowBatch]) -> None:
        self._with_retries(lambda: self.applier.plan(batches))
        results = self._with_retries(lambda: self.applier.apply_many(batches))
        for batch, applied in zip(batches, results, strict=True):
            if applied is None:  # a redelivery: maybe we stopped before announcing
                if self._is_completed_unannounced(batch.ingest_id):
                    self._announce(batch.ingest_id)
                continue
            self._bar.update(applied.rows)
            self._maybe_progress(batch.ingest_id, force=False)
            if applied.all_in:
                self._finish(batch.ingest_id)

    def _finish(self, ingest_id: str) -> None:
        if self._with_retries(lambda: finish_if_complete(self.engine, ingest_id)):
            self._with_retries(self.applier.restore_indexes)  # before anyone hears it is done
            self._announce(ingest_id)
        elif self._is_completed_unannounced(ingest_id):
            self._announce(ingest_id)  # we crashed between completing and announcing

    def _announce(self, ingest_id: str) -> None:
        self._maybe_progress(ingest_id, force=True)
        rep = report.build(self.engine, ingest_id)
        path = report.write_csv(rep, self.settings.reports_dir)
        with self.engine.begin() as conn:
            conn.execute(update(_RUN).where(_RUN.c.id == ingest_id).values(report=rep))
        self.events.event("completed", ingest_id, rows_published=rep["rows_published"],
                          rows_written=rep["rows_written"], rows_rejected=rep["rows_rejected"],
                          duration_s=rep["duration_s"], tables=rep["tables"],
                          report_path=str(path))
        self.events.wait_for_acks()
        with self.engine.begin() as conn:
            conn.execute(update(_RUN).where(_RUN.c.id == ingest_id).values(announced=True))
        log.info("ingest %s completed: %s rows written, %s rejected, report %s", ingest_id,
                 rep["rows_written"], rep["rows_rejected"], path)
        self.completed.append(rep)

    def _announce_pending(self) -> None:
        with self.engine.connect() as conn:
            pending = conn.execute(select(_RUN.c.id).where(
                _RUN.c.status == "completed", _RUN.c.announced.is_(False))).scalars().all()
        for ingest_id in pending:
            self._announce(ingest_id)

    def _all_completed(self, ingest_ids: set[str]) -> bool:
        # Ask the database, not our own announcements: with several workers, another one may
        # have applied the last batch.
        if not ingest_ids <= {r["ingest_id"] for r in self.completed}:
            with self.engine.connect() as conn:
                done = conn.execute(select(_RUN.c.id).where(
                    _RUN.c.id.in_(ingest_ids), _RUN.c.status == "completed",
                    _RUN.c.announced.is_(True))).scalars().all()
            return set(done) == ingest_ids
        return True

    def _is_completed_unannounced(self, ingest_id: str) -> bool:
        with self.engine.connect() as conn:
            row = conn.execute(select(_RUN.c.status, _RUN.c.announced)
                               .where(_RUN.c.id == ingest_id)).first()
        return bool(row and row.status == "completed" and not row.announced)

    def _maybe_progress(self, ingest_id: str, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._progress.last_sent.get(ingest_id, 0.0) < PROGRESS_EVERY_S:
            return
        self._progress.last_sent[ingest_id] = now
        with self.engine.connect() as conn:
            run = conn.execute(select(_RUN).where(_RUN.c.id == ingest_id)).mappings().first()
        if run is None:
            return
        self.events.event("progress", ingest_id, rows_written=run["rows_written"],
                          rows_applied=run["rows_applied"],
                          batches_applied=run["batches_applied"],
                          batches_total=run["batches_expected"], rows_total=run["rows_total"])

    # -- resilience -----------------------------------------------------------------------

    def _commit(self) -> None:
        try:
            self.consumer.commit()
        except FencedInstanceIdError:
            raise self._fenced() from None
        except (CommitFailedError, KafkaError) as e:
            # Harmless: the batches are in the database and will be recognised if redelivered.
            log.warning("could not commit Kafka offsets (%s); batches may be redelivered", e)

    def _fenced(self) -> Fenced:
        s = self.settings
        return Fenced(f"another worker joined {s.worker_group} as instance "
                      f"{s.worker_instance_id!r} (MOLSTREAM_WORKER_INSTANCE_ID): this one stops; "
                      "give each running worker an id of its own")

    def _with_retries(self, action):
        delay = 0.5
        while True:
            try:
                return action()
            except OperationalError as e:
                text = str(e.orig if e.orig is not None else e).lower()
                if not any(r in text for r in _RETRYABLE) or self._stop:
                    raise
                log.warning("database busy or unavailable (%s); retrying in %.1fs",
                            text.splitlines()[0], delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
