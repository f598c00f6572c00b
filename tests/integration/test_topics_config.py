"""molstream's topics as configured (publish.ensure_topics, used by the fetcher and the worker),
against the real broker: created with the configured replication factor and
min.insync.replicas; the rows topic grown to MOLSTREAM_ROWS_PARTITIONS, never shrunk; with
MOLSTREAM_CREATE_TOPICS=false nothing created or changed, a missing topic waited for, then
named in one line."""

from __future__ import annotations

import logging
import threading
import uuid

import pytest
import waits
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from molstream.config import Topics
from molstream.publish import PublishError, ensure_topics

pytestmark = [pytest.mark.kafka]


@pytest.fixture
def admin(kafka_bootstrap: str):
    client = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="test-topics")
    yield client
    client.close()


@pytest.fixture
def topics() -> Topics:
    return Topics(prefix=f"tc{uuid.uuid4().hex[:10]}")


def _names(t: Topics) -> list[str]:
    return [t.rows, t.rejected, t.events]


def _partitions(admin: KafkaAdminClient, topic: str) -> int:
    [described] = admin.describe_topics([topic])
    return len(described["partitions"])


def _grown_to(admin: KafkaAdminClient, topic: str, n: int) -> None:
    """The broker's metadata catches up with a change a moment later."""
    waits.wait_for(lambda: _partitions(admin, topic) == n, timeout_s=waits.EVENT_TIMEOUT_S,
                   what=f"{topic} with {n} partitions")


def _config(admin: KafkaAdminClient, topic: str, key: str) -> str | None:
    """A topic's own setting (not the broker's default)."""
    found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    return (found["topic"][topic].get(key) or {}).get("value")


def test_created_with_the_configured_replication_and_min_insync(kafka_bootstrap, admin, topics):
    ensure_topics(kafka_bootstrap, topics, rows_partitions=3, replication_factor=1,
                  min_insync_replicas=1)
    assert set(_names(topics)) <= set(admin.list_topics())
    _grown_to(admin, topics.rows, 3)
    for name in _names(topics):
        assert _config(admin, name, "min.insync.replicas") == "1"
    [rows] = admin.describe_topics([topics.rows])
    assert {len(p["replica_nodes"]) for p in rows["partitions"]} == {1}


def test_a_replication_factor_the_cluster_cannot_give_is_refused_not_ignored(
        kafka_bootstrap, admin, topics):
    # One broker: a factor of 2 used to be silently replaced by 1.
    with pytest.raises(PublishError) as e:
        ensure_topics(kafka_bootstrap, topics, replication_factor=2)
    message = str(e.value)
    assert "\n" not in message and "refused to set up molstream's topics" in message
    assert "replication" in message.lower()
    assert not set(_names(topics)) & set(admin.list_topics())


def test_rows_partitions_grow_and_never_shrink(kafka_bootstrap, admin, topics):
    ensure_topics(kafka_bootstrap, topics, rows_partitions=1)
    assert _partitions(admin, topics.rows) == 1
    ensure_topics(kafka_bootstrap, topics, rows_partitions=4)
    _grown_to(admin, topics.rows, 4)
    ensure_topics(kafka_bootstrap, topics, rows_partitions=2)
    assert _partitions(admin, topics.rows) == 4
    ensure_topics(kafka_bootstrap, topics, rows_partitions=6)
    _grown_to(admin, topics.rows, 6)
    assert _partitions(admin, topics.events) == 1


def test_not_created_when_someone_else_creates_them(kafka_bootstrap, admin, topics, caplog):
    with pytest.raises(PublishError) as e:
        ensure_topics(kafka_bootstrap, topics, create=False, wait_s=0)
    message = str(e.value)
    assert "\n" not in message and topics.rows in message
    assert "MOLSTREAM_CREATE_TOPICS=false" in message and "topics Job" in message
    assert not set(_names(topics)) & set(admin.list_topics())

    # Waited for: created meanwhile (as the chart's post-install Job does), it is used.
    caplog.set_level(logging.INFO, logger="molstream.publish")
    done: list[BaseException | None] = []

    def ensure() -> None:
        try:
            ensure_topics(kafka_bootstrap, topics, rows_partitions=4, create=False,
                          wait_s=waits.EVENT_TIMEOUT_S)
            done.append(None)
        except BaseException as e:  # noqa: BLE001 - reported below
            done.append(e)

    waiting = threading.Thread(target=ensure)
    waiting.start()
    waits.wait_for(lambda: "waiting for Kafka topic" in caplog.text,
                   timeout_s=waits.EVENT_TIMEOUT_S, what="ensure_topics waiting")
    admin.create_topics([NewTopic(n, 1, 1) for n in _names(topics)])
    waiting.join(timeout=waits.EVENT_TIMEOUT_S)
    assert done == [None]
    # Not its to grow either: the rows topic keeps the partition its creator gave it.
    assert _partitions(admin, topics.rows) == 1
    assert "has 1 partitions, MOLSTREAM_ROWS_PARTITIONS says 4" in caplog.text
