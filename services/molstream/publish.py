"""Kafka producer side: topics, row batches, rejections and events, with acks awaited.

Sends are asynchronous for throughput, but never unbounded: at most MAX_IN_FLIGHT batches wait
for their acknowledgement, and `wait_for_acks` raises if any send failed, so the fetcher reports
a batch as published only once the broker has it (acks=all).
"""

from __future__ import annotations

import logging
from collections import deque

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.producer.future import FutureRecordMetadata

from .config import Topics
from .contract import Rejection
from .messages import EndOfIngest, RowBatch, encode_batch, encode_end, event, to_json

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_IN_FLIGHT = 16


class PublishError(RuntimeError):
    pass


def ensure_topics(bootstrap: str, topics: Topics, *, rows_partitions: int = 1) -> None:
    """Create molstream's topics if they are missing (the Helm chart also creates them)."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="molstream-admin",
                                 request_timeout_ms=30_000)
    except KafkaError as e:
        raise PublishError(f"cannot reach Kafka at {bootstrap}: {e}") from None
    try:
        existing = set(admin.list_topics())
        wanted = [NewTopic(topics.rows, rows_partitions, 1,
                           topic_configs={"max.message.bytes": str(MAX_MESSAGE_BYTES)}),
                  NewTopic(topics.rejected, 1, 1), NewTopic(topics.events, 1, 1)]
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process won the race
    finally:
        admin.close()


class Publisher:
    def __init__(self, bootstrap: str, topics: Topics, *, client_id: str = "molstream",
                 delivery_timeout_s: float = 300) -> None:
        self.topics = topics
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
            )
        except KafkaError as e:
            raise PublishError(f"cannot reach Kafka at {bootstrap}: {e}") from None
        self._in_flight: deque[FutureRecordMetadata] = deque()

    def send_batch(self, batch: RowBatch) -> None:
        value, headers = encode_batch(batch)
        self._track(self._producer.send(self.topics.rows, key=batch.key, value=value,
                                        headers=headers))
        while len(self._in_flight) > MAX_IN_FLIGHT:
            self._settle(self._in_flight.popleft())

    def send_end(self, end: EndOfIngest) -> None:
        self.wait_for_acks()  # the end marker must never overtake a batch
        value, headers = encode_end(end)
        self._track(self._producer.send(self.topics.rows, key=end.key, value=value,
                                        headers=headers))
        self.wait_for_acks()

    def send_rejections(self, ingest_id: str, rejections: list[Rejection]) -> None:
        for r in rejections:
            self._track(self._producer.send(
                self.topics.rejected, key=f"{ingest_id}/{r.line}".encode(),
                value=to_json(r.as_message(ingest_id))))

    def event(self, kind: str, ingest_id: str, *, track: bool = True, **fields) -> None:
        """Send an event; `track=False` for one nobody waits for (progress), whose failure
        must not surface in a later `wait_for_acks`."""
        future = self._producer.send(self.topics.events, key=ingest_id.encode(),
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
            self._producer.close(timeout=5)

    def _track(self, future: FutureRecordMetadata) -> None:
        self._in_flight.append(future)

    @staticmethod
    def _settle(future: FutureRecordMetadata, timeout_s: float = 600) -> None:
        try:
            future.get(timeout=timeout_s)
        except KafkaError as e:
            raise PublishError(f"Kafka did not acknowledge a message: {e}") from None
