"""Kafka producer side: topics, row batches, rejections and events, with acks awaited.

Sends are asynchronous for throughput, but never unbounded: at most MAX_IN_FLIGHT batches wait
for their acknowledgement, and `wait_for_acks` raises if any send failed, so the fetcher reports
a batch as published only once the broker has it (acks=all).
"""

from __future__ import annotations

import logging
import time
from collections import deque

from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import (
    InvalidPartitionsError,
    KafkaError,
    TopicAlreadyExistsError,
)
from kafka.producer.future import FutureRecordMetadata

from .config import Settings, Topics
from .contract import Rejection
from .kafka_security import KafkaSecurity, explain_kafka_error, newer_credentials
from .messages import EndOfIngest, RowBatch, encode_batch, encode_end, event, to_json

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_IN_FLIGHT = 16


class PublishError(RuntimeError):
    """`permanent`: Kafka refused this client (a login, a certificate, an ACL): no retry or
    wait mends it (molstream.kafka_security)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def kafka_failure(what: str, error: KafkaError, security: KafkaSecurity | None,
                  bootstrap: str) -> PublishError:
    """PublishError for `error`: Kafka's refusal in one line (permanent), else `what`. A
    refused login whose password file holds another password by now (a Secret fixed or
    rotated since it was read) is not permanent: a new start logs in with that."""
    line = explain_kafka_error(error, security, bootstrap=bootstrap)
    if line and security is not None and newer_credentials(error, security):
        return PublishError(f"{line}; the password file holds another password by now: a new "
                            "start logs in with it")
    return PublishError(line, permanent=True) if line else PublishError(f"{what}: {error}")


# A topic that someone else creates (MOLSTREAM_CREATE_TOPICS=false) is looked for this often.
TOPIC_WAIT_EVERY_S = 2.0


def topic_options(settings: Settings) -> dict:
    """`ensure_topics`'s options, from the settings (MOLSTREAM_CREATE_TOPICS and the rest)."""
    return dict(rows_partitions=settings.rows_partitions, create=settings.create_topics,
                replication_factor=settings.topic_replication_factor,
                min_insync_replicas=settings.topic_min_insync_replicas,
                wait_s=settings.kafka_outage_s, security=settings.kafka_security)


def ensure_topics(bootstrap: str, topics: Topics, *, rows_partitions: int = 1,
                  create: bool = True, replication_factor: int = 1,
                  min_insync_replicas: int = 0, wait_s: float = 300,
                  security: KafkaSecurity | None = None) -> None:
    """molstream's three topics, as configured.

    `create`: missing topics are created with `replication_factor` and (when set)
    min.insync.replicas, and a rows topic with fewer than `rows_partitions` partitions gets
    more (never fewer: a partition cannot be taken away, and keys would move). Otherwise
    (the Helm chart's topics Job or Strimzi's KafkaTopics own them, and this component's
    Kafka user may have no right to create or alter topics) nothing is created or changed: a
    missing topic is waited for, for up to `wait_s` (a post-install Job creates them after
    the worker starts), then PublishError names it."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="molstream-admin",
                                 request_timeout_ms=30_000,
                                 **(security or KafkaSecurity()).client_kwargs())
    except KafkaError as e:
        raise PublishError(f"cannot reach Kafka at {bootstrap}: {e}") from None
    try:
        if create:
            _create_missing(admin, topics, rows_partitions, replication_factor,
                            min_insync_replicas)
            _grow_rows(admin, topics.rows, rows_partitions)
        else:
            _wait_for(admin, topics, wait_s)
            have = _partitions(admin, topics.rows)
            if have is not None and have < rows_partitions:
                log.warning("topic %s has %d partitions, MOLSTREAM_ROWS_PARTITIONS says %d: "
                            "MOLSTREAM_CREATE_TOPICS=false leaves adding them to whoever "
                            "creates the topics", topics.rows, have, rows_partitions)
    except KafkaError as e:
        raise kafka_failure(f"Kafka at {bootstrap} refused to set up molstream's topics", e,
                            security, bootstrap) from None
    finally:
        admin.close()


def _create_missing(admin: KafkaAdminClient, topics: Topics, rows_partitions: int,
                    replication_factor: int, min_insync_replicas: int) -> None:
    configs = {"min.insync.replicas": str(min_insync_replicas)} if min_insync_replicas else {}
    wanted = [NewTopic(topics.rows, rows_partitions, replication_factor,
                       topic_configs={"max.message.bytes": str(MAX_MESSAGE_BYTES), **configs}),
              NewTopic(topics.rejected, 1, replication_factor, topic_configs=configs),
              NewTopic(topics.events, 1, replication_factor, topic_configs=configs)]
    existing = set(admin.list_topics())
    missing = [t for t in wanted if t.name not in existing]
    if missing:
        try:
            admin.create_topics(missing)
        except TopicAlreadyExistsError:
            pass  # another process won the race
        log.info("created Kafka topics %s (replication factor %d%s)",
                 ", ".join(t.name for t in missing), replication_factor,
                 f", min.insync.replicas {min_insync_replicas}" if min_insync_replicas else "")


def _grow_rows(admin: KafkaAdminClient, rows: str, partitions: int) -> None:
    """More partitions for the rows topic when fewer than `partitions` (more workers)."""
    have = _partitions(admin, rows)
    if have is None or have >= partitions:
        return
    try:
        admin.create_partitions({rows: partitions})
    except InvalidPartitionsError:  # another process grew it first
        return
    log.info("topic %s: %d partitions, was %d (MOLSTREAM_ROWS_PARTITIONS)", rows, partitions,
             have)


def _partitions(admin: KafkaAdminClient, topic: str) -> int | None:
    for described in admin.describe_topics([topic]):
        if described.get("name") == topic and not described.get("error_code"):
            return len(described.get("partitions") or ())
    return None


def _wait_for(admin: KafkaAdminClient, topics: Topics, wait_s: float) -> None:
    names = [topics.rows, topics.rejected, topics.events]
    deadline = time.monotonic() + wait_s
    while True:
        missing = [n for n in names if n not in set(admin.list_topics())]
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise PublishError(
                f"topic {', '.join(missing)} does not exist after {wait_s:g} s, and "
                "MOLSTREAM_CREATE_TOPICS=false leaves creating it to the Helm chart's topics "
                "Job or a Strimzi KafkaTopic")
        log.info("waiting for Kafka topic %s (MOLSTREAM_CREATE_TOPICS=false: the Helm "
                 "chart's topics Job or a Strimzi KafkaTopic creates it)", ", ".join(missing))
        time.sleep(TOPIC_WAIT_EVERY_S)


class Publisher:
    def __init__(self, bootstrap: str, topics: Topics, *, client_id: str = "molstream",
                 delivery_timeout_s: float = 300, security: KafkaSecurity | None = None) -> None:
        self.topics = topics
        self._bootstrap, self._security = bootstrap, security or KafkaSecurity()
        delivery_ms = int(delivery_timeout_s * 1000)
        request_ms = min(30_000, max(1_000, delivery_ms // 2))  # kafka-python wants it below
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap,
                client_id=client_id,
                acks="all",
                linger_ms=5,
                batch_size=1024 * 1024,
                max_request_size=MAX_MESSAGE_BYTES,
                # Ride out a broker outage of up to `delivery_timeout_s` (the settings'
                # kafka_outage_s) instead of failing the ingest.
                retries=2**31 - 1,
                delivery_timeout_ms=max(delivery_ms, request_ms + 5 + 1),
                request_timeout_ms=request_ms,
                max_block_ms=min(120_000, max(delivery_ms, 1_000)),
                retry_backoff_ms=250,
                **self._security.client_kwargs(),
            )
        except KafkaError as e:
            raise PublishError(f"cannot reach Kafka at {bootstrap}: {e}") from None
        self._in_flight: deque[FutureRecordMetadata] = deque()
        # time.monotonic() of the broker's last acknowledgement per partition (str of its
        # TopicPartition), set on kafka-python's sender thread: molstream.kafka_full tells a
        # storage error that a retry got past from one that stayed.
        self.acks: dict[str, float] = {}

    def send_batch(self, batch: RowBatch) -> None:
        value, headers = encode_batch(batch)
        self._track(self._send(self.topics.rows, key=batch.key, value=value,
                               headers=headers))
        while len(self._in_flight) > MAX_IN_FLIGHT:
            self._settle(self._in_flight.popleft())

    def send_end(self, end: EndOfIngest) -> None:
        self.wait_for_acks()  # the end marker must never overtake a batch
        value, headers = encode_end(end)
        self._track(self._send(self.topics.rows, key=end.key, value=value,
                               headers=headers))
        self.wait_for_acks()

    def send_rejections(self, ingest_id: str, rejections: list[Rejection]) -> None:
        for r in rejections:
            self._track(self._send(
                self.topics.rejected, key=f"{ingest_id}/{r.line}".encode(),
                value=to_json(r.as_message(ingest_id))))

    def event(self, kind: str, ingest_id: str, *, track: bool = True, **fields) -> None:
        """Send an event; `track=False` for one nobody waits for (progress), whose failure
        must not surface in a later `wait_for_acks`."""
        future = self._send(self.topics.events, key=ingest_id.encode(),
                            value=to_json(event(kind, ingest_id, **fields)))
        if track:
            self._track(future)

    def wait_for_acks(self, timeout_s: float = 600) -> None:
        self._producer.flush(timeout=timeout_s)
        while self._in_flight:
            self._settle(self._in_flight.popleft(), timeout_s)

    def close(self) -> None:
        try:
            self._producer.flush(timeout=30)
        except KafkaError as e:  # only after a failure: a success waited for every ack
            log.warning("closing the Kafka producer: %s", e)
        finally:
            try:
                self._producer.close(timeout=5)
            except KafkaError:  # a broker gone for good: what failed was said already
                self._abandon()

    def _abandon(self) -> None:
        """Drop what the broker never acknowledged. kafka-python's close() flushes first, even
        to close forcefully, and raises when that times out (again from __del__, at exit):
        its sender is stopped without sending, which fails the batches left, then closed."""
        sender = getattr(self._producer, "_sender", None)
        if sender is not None:
            sender.force_close()
            sender.join(5)
        try:
            self._producer.close(timeout=0)
        except KafkaError as e:
            log.warning("closing the Kafka producer: %s", e)

    def _send(self, topic: str, **message) -> FutureRecordMetadata:
        future = self._producer.send(topic, **message)
        future.add_callback(self._acked)
        return future

    def _acked(self, metadata) -> None:
        self.acks[str(TopicPartition(metadata.topic, metadata.partition))] = time.monotonic()

    def _track(self, future: FutureRecordMetadata) -> None:
        self._in_flight.append(future)

    def _settle(self, future: FutureRecordMetadata, timeout_s: float = 600) -> None:
        try:
            future.get(timeout=timeout_s)
        except KafkaError as e:
            raise kafka_failure("Kafka did not acknowledge a message", e, self._security,
                                self._bootstrap) from None
