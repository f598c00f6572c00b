"""The publisher notes when the broker last acknowledged each partition, named as kafka-python's
producer names it in its retry warnings (molstream.kafka_full tells a storage error that a
retry got past by it; tests/unit/test_kafka_full_only_when_full.py)."""

from __future__ import annotations

import time
import uuid

import pytest
from kafka import TopicPartition
from molstream.config import Topics
from molstream.publish import Publisher, ensure_topics

pytestmark = [pytest.mark.kafka]


def test_the_publisher_notes_each_partitions_last_ack(kafka_bootstrap):
    topics = Topics(prefix=f"acks{uuid.uuid4().hex[:8]}")
    ensure_topics(kafka_bootstrap, topics)
    publisher = Publisher(kafka_bootstrap, topics, delivery_timeout_s=30)
    try:
        before = time.monotonic()
        publisher.event("started", "acks-1")
        publisher.wait_for_acks(30)
        assert list(publisher.acks) == [str(TopicPartition(topics.events, 0))]
        assert before <= publisher.acks[str(TopicPartition(topics.events, 0))] <= time.monotonic()
    finally:
        publisher.close()
