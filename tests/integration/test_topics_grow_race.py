"""The fetcher and the worker start together and both call ensure_topics on a fresh
prefix (create and grow racing), with different MOLSTREAM_ROWS_PARTITIONS: neither fails, and
the rows topic ends with the larger count."""

from __future__ import annotations

import threading
import uuid

import pytest
import waits
from kafka import KafkaAdminClient
from molstream.config import Topics
from molstream.publish import ensure_topics

pytestmark = [pytest.mark.kafka]


def _partitions(admin, topic):
    [described] = admin.describe_topics([topic])
    return len(described["partitions"])


@pytest.mark.parametrize("counts", [(4, 8), (8, 4), (4, 4, 4, 4)])
def test_racing_ensure_topics_settle_at_the_largest_count(kafka_bootstrap, counts):
    topics = Topics(prefix=f"rt{uuid.uuid4().hex[:10]}")
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(counts))

    def one(n: int) -> None:
        try:
            barrier.wait()
            ensure_topics(kafka_bootstrap, topics, rows_partitions=n)
        except BaseException as e:  # noqa: BLE001 - reported by the test's thread
            errors.append(e)

    threads = [threading.Thread(target=one, args=(n,)) for n in counts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, [repr(e) for e in errors]
    # a second round (as a restart would) must also settle at the largest
    for n in counts:
        ensure_topics(kafka_bootstrap, topics, rows_partitions=n)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        waits.wait_for(lambda: _partitions(admin, topics.rows) == max(counts), timeout_s=30,
                       what=f"{max(counts)} partitions")
    finally:
        admin.close()
