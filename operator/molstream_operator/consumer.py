"""The background thread that reads ``<prefix>.events`` and applies each event to its resource.

Offsets are committed after the status patch of each record went through (or the record was
judged irrelevant), so an operator restart re-applies at most a few events, which is harmless:
applying an event twice gives the status it gave once. When the Kubernetes API is unreachable
the thread seeks back to the record and tries again, with a growing delay; malformed records are
logged (type and offset only, never their content) and skipped.

The consumer connects as the fetchers and workers do (MOLSTREAM_KAFKA_SECURITY_PROTOCOL and the
rest: molstream.kafka_security). Kafka refusing it (a login, a certificate, an ACL) is logged as
one line naming the problem, shown by the events probe, and tried again with the same growing
delay: the operator keeps running (the status follows the Jobs meanwhile) and recovers once the
Secret or the ACL is fixed: each connection reads the settings' files again (a Secret volume's
files change in place when the Secret does: a password fixed, or rotated).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from molstream.kafka_access import check_access
from molstream.kafka_client_fixes import before_poll
from molstream.kafka_security import KafkaAccessError, KafkaSecurity, explain_kafka_error

from . import metrics
from .ingest_events import IngestEvent, MalformedEvent, parse_event
from .kube import TransientApiError

__all__ = ["EventConsumer"]

logger = logging.getLogger(__name__)

_MAX_BACKOFF = 30.0


class EventConsumer:
    def __init__(
        self,
        *,
        bootstrap: str,
        topic: str,
        group_id: str,
        handle: Callable[[IngestEvent], str],
        security: KafkaSecurity | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.security = security if security is not None else KafkaSecurity.from_env()
        self.error: str | None = None  # Kafka's refusal, while it lasts
        self.topic = topic
        self.group_id = group_id
        self._handle = handle
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = False
        self.last_poll: float | None = None
        self.applied = 0
        self.skipped = 0

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="molstream-events", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def health(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "connected": self.connected,
            "lastPoll": self.last_poll,
            "applied": self.applied,
            "skipped": self.skipped,
            **({"error": self.error} if self.error else {}),
        }

    # --- the thread --------------------------------------------------------------------------

    def _connect(self) -> KafkaConsumer:
        try:  # the password, the certificates as the Secret volume holds them now
            self.security = self.security.reloaded()
        except ValueError as exc:  # a file half-written, or wrong now: named, tried again
            raise KafkaAccessError(str(exc)) from None
        check_access(
            self.bootstrap,
            self.security,
            topics={self.topic: ("READ",)},
            groups=[self.group_id],
        )
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap.split(","),
            group_id=self.group_id,
            client_id="molstream-operator",
            auto_offset_reset="earliest",  # a new group reads the whole topic
            enable_auto_commit=False,
            metadata_max_age_ms=30_000,  # notice the topic soon if it is created after us
            # A crashed operator's partitions go to its successor within 15 s.
            session_timeout_ms=15_000,
            heartbeat_interval_ms=3_000,
            **self.security.client_kwargs(),
        )
        consumer.subscribe([self.topic])
        return consumer

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                consumer = self._connect()
            except KafkaAccessError as exc:
                self._refused(str(exc), backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            except Exception as exc:  # noqa: BLE001 - the broker may be down: retry forever
                logger.warning(
                    "Kafka %s not reachable (%s); retrying in %.0fs",
                    self.bootstrap,
                    type(exc).__name__,
                    backoff,
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            logger.info("Reading events from %s as group %s", self.topic, self.group_id)
            self.connected = True
            self.error = None
            backoff = 1.0
            try:
                self._consume(consumer)
            except Exception as exc:
                refusal = explain_kafka_error(exc, self.security, bootstrap=self.bootstrap)
                if refusal:  # an ACL taken away meanwhile
                    self._refused(refusal, backoff)
                else:
                    logger.exception("Event consumer failed; reconnecting in %.0fs", backoff)
                    self._stop.wait(backoff)
            finally:
                self.connected = False
                try:
                    consumer.close(autocommit=False)
                except Exception:  # noqa: BLE001
                    logger.debug("closing the consumer failed", exc_info=True)

    def _refused(self, line: str, backoff: float) -> None:
        self.error = line
        logger.error("%s; retrying in %.0fs", line, backoff)
        self._stop.wait(backoff)

    def _consume(self, consumer: KafkaConsumer) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            before_poll(consumer)  # kafka-python 3.0.12's bugs (molstream.kafka_client_fixes)
            batches = consumer.poll(timeout_ms=1000, max_records=200)
            self.last_poll = time.time()
            done: dict[TopicPartition, OffsetAndMetadata] = {}
            retry = False
            for partition, records in batches.items():
                for record in records:
                    try:
                        self._apply(record)
                    except TransientApiError as exc:
                        logger.warning(
                            "Kubernetes API unavailable (%s); event at %s:%d retried in %.0fs",
                            exc.status or exc.reason,
                            partition.topic,
                            record.offset,
                            backoff,
                        )
                        consumer.seek(partition, record.offset)
                        retry = True
                        break
                    done[partition] = OffsetAndMetadata(record.offset + 1, "", -1)
            if done:
                try:
                    consumer.commit(done)
                except Exception as exc:  # noqa: BLE001 - rebalance: events come again, harmless
                    logger.warning("Offset commit failed (%s)", type(exc).__name__)
            if retry:
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            else:
                backoff = 1.0

    def _apply(self, record: Any) -> None:
        try:
            event = parse_event(record.key, record.value)
        except MalformedEvent as exc:
            self.skipped += 1
            metrics.EVENTS.labels("unknown", "malformed").inc()
            logger.warning(
                "Skipping a malformed event at %s:%d:%d (%s)",
                record.topic,
                record.partition,
                record.offset,
                exc,
            )
            return
        outcome = self._handle(event)
        metrics.EVENTS.labels(event.type, metrics.event_outcome(outcome)).inc()
        metrics.EVENT_LAG.observe(max(0.0, time.time() - event.ts))
        if outcome == "applied":
            self.applied += 1
            logger.info("Event %s of %s applied", event.type, event.ingest_id)
        else:
            self.skipped += 1
            logger.debug("Event %s of %s %s", event.type, event.ingest_id, outcome)
