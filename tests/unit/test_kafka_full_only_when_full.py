"""Kafka full only when it still is (unit): a KAFKA_STORAGE_ERROR that kafka-python's retry got
past (a broker with several log directories loses one, the partition's leadership moves: the
retry is acknowledged) does not make a later, unrelated publish failure "Kafka's log volume is
full" (permanent, exit 3, never retried), nor rewrite a refusal's own words. A storage error no
acknowledgement of its partition followed still does. Publisher.acks, which this reads, is
tests/integration/test_publisher_acks.py."""

from __future__ import annotations

import logging
import time

from kafka import TopicPartition
from kafka.errors import KafkaStorageError
from molstream.kafka_full import PREFIX, StorageWatch
from molstream.publish import PublishError

SENDER = logging.getLogger("kafka.producer.sender")
P0 = str(TopicPartition("x.rows", 0))
P2 = str(TopicPartition("x.rows", 2))


def _storage_error(partition: int = 2) -> None:
    # kafka-python's own line when it retries (kafka/producer/sender.py)
    SENDER.warning("%s: Got error produce response on topic-partition %s, retrying "
                   "(%s attempts left): %s%s", "<Sender>", TopicPartition("x.rows", partition),
                   2147483646,
                   KafkaStorageError.__name__, "")


def _outage() -> PublishError:
    return PublishError("Kafka did not acknowledge a message: KafkaTimeoutError: Batch for "
                        "TopicPartition(topic='x.rows', partition=0) expired")


def test_a_storage_error_a_retry_got_past_then_an_outage_is_an_outage():
    with StorageWatch() as watch:
        _storage_error()
        acks = {P2: time.monotonic(), P0: time.monotonic()}  # the retry, acknowledged
        error = _outage()  # minutes later, an outage outlasting MOLSTREAM_KAFKA_OUTAGE_S
        assert not watch.explain(error, bootstrap="kafka:9092", rows=1000, acks=acks)
    assert not error.permanent and str(error).startswith("Kafka did not acknowledge")


def test_a_refusal_keeps_its_own_words():
    with StorageWatch() as watch:
        _storage_error()  # not acknowledged since, even
        error = PublishError("Kafka refused molstream-fetcher: not authorized to write to "
                             "topic x.rows (an ACL)", permanent=True)
        assert not watch.explain(error, bootstrap="kafka:9092", rows=1000, acks={})
    assert str(error).startswith("Kafka refused") and error.permanent


def test_a_storage_error_its_partition_never_got_past_is_full():
    """The disk filling mid-request: other partitions acknowledged after, not this one."""
    acks = {P2: time.monotonic()}
    with StorageWatch() as watch:
        _storage_error(0)
        acks[P2] = time.monotonic()
        error = _outage()
        assert watch.explain(error, bootstrap="kafka:9092", rows=1000, acks=acks)
    assert str(error).startswith(PREFIX) and error.permanent and P0 in str(error)


def test_a_storage_error_again_after_an_ack_is_full():
    with StorageWatch() as watch:
        _storage_error()
        acks = {P2: time.monotonic()}
        _storage_error()  # and then the volume filled
        assert watch.explain(_outage(), bootstrap="kafka:9092", rows=1000, acks=acks)


def test_a_publish_failing_with_the_storage_error_itself_is_full():
    with StorageWatch() as watch:
        error = PublishError(f"Kafka did not acknowledge a message: {KafkaStorageError.__name__}")
        assert watch.explain(error, bootstrap="kafka:9092", rows=1000, acks={P0: time.monotonic()})
    assert error.permanent
