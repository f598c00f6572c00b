"""A join that kafka-python 3.0.12 leaves stranded is redone by the worker's next polls.

Partitions added to the topic make the group's leader rejoin (its metadata changed). A poll
that times out after the leader computed the assignment but before the SyncGroup answer leaves
the join in flight, and no later poll awaits it: the consumer stays "rebalancing" with no
heartbeat, is dropped from the group and never asks to join again (met in CI: a consumer that
never got its partition, for three minutes, while the other member held both). The test makes
that window certain (the assignment blocks kafka-python's network thread longer than the poll
waits) and shows the bug first with plain polls, then that the worker's polls
(molstream.polling, molstream.kafka_client_fixes) join again.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import waits
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewPartitions, NewTopic
from molstream.health import Health
from molstream.kafka_client_fixes import before_poll
from molstream.polling import Polling

pytestmark = [pytest.mark.kafka]

POLL_MS = 100
ASSIGNMENT_S = 1.0  # far longer than a poll: the poll ends with the join in flight


def _joined(consumer: KafkaConsumer, partitions: int) -> bool:
    coordinator = consumer._coordinator  # noqa: SLF001
    return (len(consumer.assignment()) == partitions
            and not coordinator.rebalance_in_progress())


def test_a_join_left_in_flight_by_a_poll_is_finished(kafka_bootstrap):
    topic, group = f"strand{uuid.uuid4().hex[:10]}", f"strand{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group,
                             enable_auto_commit=False, session_timeout_ms=6_000,
                             heartbeat_interval_ms=500,
                             metadata_max_age_ms=500)  # sees the new partition soon
    consumer.subscribe([topic])
    coordinator = consumer._coordinator  # noqa: SLF001
    try:
        def poll() -> bool:
            before_poll(consumer)
            consumer.poll(POLL_MS)
            return _joined(consumer, 1)

        waits.wait_for(poll, timeout_s=waits.EVENT_TIMEOUT_S, what="the group joined")

        assigned = threading.Event()
        perform_assignment = coordinator._perform_assignment

        def slow_assignment(*args, **kwargs):  # on kafka-python's network thread
            try:
                return perform_assignment(*args, **kwargs)
            finally:
                time.sleep(ASSIGNMENT_S)
                assigned.set()

        coordinator._perform_assignment = slow_assignment
        admin.create_partitions({topic: NewPartitions(total_count=2)})

        # Plain polls (kafka-python alone): the join is left in flight and never finished.
        waits.wait_for(lambda: consumer.poll(POLL_MS) is not None and assigned.is_set(),
                       timeout_s=waits.EVENT_TIMEOUT_S, what="the leader's rejoin")
        coordinator._perform_assignment = perform_assignment
        task = coordinator._join_task
        assert task is not None, (
            "kafka-python finished the join by itself: molstream.kafka_client_fixes."
            "finish_stranded_join may no longer be needed")
        waits.wait_for(lambda: consumer.poll(POLL_MS) is not None and task.is_done,
                       timeout_s=waits.EVENT_TIMEOUT_S, what="the SyncGroup answer")
        for _ in range(20):
            consumer.poll(POLL_MS)
        assert coordinator.rebalance_in_progress() and not coordinator.need_rejoin(), (
            "kafka-python finished the join by itself: molstream.kafka_client_fixes."
            "finish_stranded_join may no longer be needed")
        assert len(consumer.assignment()) < 2

        # The worker's polls: the group is joined again, both partitions assigned.
        polling = Polling(consumer, lambda timeout_ms=500, max_records=None: consumer.poll(
            timeout_ms=timeout_ms, max_records=max_records), Health(60))
        try:
            waits.wait_for(lambda: polling.gather() is not None and _joined(consumer, 2),
                           timeout_s=waits.EVENT_TIMEOUT_S,
                           what="the worker's polls to join the group again")
        finally:
            polling.close()
    finally:
        consumer.close()
        admin.close()
