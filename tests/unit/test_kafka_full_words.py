"""The words of a full Kafka log volume: the fetcher's line and the operator's reason (unit).
The real broker filling its volume is tests/reliability/test_kafka_full.py."""

from __future__ import annotations

import logging

from kafka.errors import KafkaStorageError
from molstream.kafka_full import PREFIX, StorageWatch
from molstream.publish import PublishError
from molstream_operator import job_failures
from molstream_operator.models import JobView


def test_a_storage_error_the_producer_retries_is_noted_and_worded() -> None:
    sender = logging.getLogger("kafka.producer.sender")
    with StorageWatch() as watch:
        # kafka-python's own line for a retried produce error
        sender.warning("%s: Got error produce response on topic-partition %s, retrying "
                       "(%s attempts left): %s%s", "<Sender>", "TopicPartition(topic='x.rows',"
                       " partition=0)", 5, KafkaStorageError.__name__, "")
    assert watch.seen == 1
    error = PublishError("Kafka did not acknowledge a message: KafkaTimeoutError")
    assert watch.explain(error, bootstrap="kafka:9092", rows=2_000_000)
    line = str(error)
    assert line.startswith(PREFIX) and "\n" not in line and "file's 2,000,000 rows" in line
    assert "kafka.persistence.size" in line and "95.4 MiB" in line and "x.rows" in line
    assert error.permanent  # exit status 3: the Job is not retried into the same full disk


def test_an_outage_without_a_storage_error_stays_an_outage() -> None:
    with StorageWatch() as watch:
        logging.getLogger("kafka.producer.sender").warning("connection refused")
    error = PublishError("Kafka did not acknowledge a message: KafkaTimeoutError")
    assert not watch.explain(error, bootstrap="kafka:9092", rows=10)
    assert not error.permanent and str(error).startswith("Kafka did not")


def test_the_operator_shows_kafka_full() -> None:
    assert job_failures.KAFKA_FULL_PREFIX == PREFIX
    job = JobView(name="ir-run-1", namespace="ns", ingestrequest="ir", creation_time="",
                  scheduled=False, failure_reason="PodFailurePolicy", failure_message="x")
    said = f"publish failed: {PREFIX}: Kafka at k:9092 …"
    seen = job_failures.explain(job, {}, {}, fetcher_message=said)
    assert seen.failure_reason == "KafkaFull"
    assert seen.failure_message == said
    other = job_failures.explain(job, {}, {}, fetcher_message="login refused")
    assert other.failure_reason == "PermanentError"
