"""molstream.polling against the real broker: after a rebalance that assigned a partition
while the work ran, every record of both partitions is fetched, although each poll's
max_records (16) cut a partition's fetch short: the one taken before the work began, and the
one a poll returned during the work (sought back to).

kafka-python 3.0.12's fetcher parks the records it parsed for a partition that is paused and
takes them back only while its in-line slot is None; records that went through the slot for
a partition not paused (the one the rebalance assigned) left it drained but set, and a parked
partition was never fetched again (the e2e symptom: a partition 6 batches behind for minutes,
the ingest never whole). tests/reliability/test_rebalance_resumes_partitions.py is the same
with worker processes and PostgreSQL.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from molstream.health import Health
from molstream.kafka_client_fixes import before_poll
from molstream.polling import MAX_RECORDS, Polling

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

PER_PARTITION = 20  # > MAX_RECORDS: a turn takes 16, 4 stay in the fetcher


def _consumer(bootstrap: str, topic: str, group: str) -> KafkaConsumer:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             max_poll_records=MAX_RECORDS, session_timeout_ms=6_000,
                             heartbeat_interval_ms=500)
    consumer.subscribe([topic])
    return consumer


def _wait(predicate, what: str, timeout_s: float = 30.0, step=lambda: None) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        step()
        time.sleep(0.05)


def test_a_partition_left_over_when_the_work_began_is_fetched_after_a_rebalance(
        kafka_bootstrap):
    topic, group = f"upk{uuid.uuid4().hex[:10]}", f"upk{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.close()
    mine = _consumer(kafka_bootstrap, topic, group)
    other = _consumer(kafka_bootstrap, topic, group)
    polling = Polling(mine, lambda timeout_ms=500, max_records=None: mine.poll(
        timeout_ms=timeout_ms, max_records=max_records), Health(60))
    try:
        # One partition each, before anything is published (nothing is consumed meanwhile).
        # Each consumer polls on a thread of its own until then: polled in turn from one
        # thread, one's poll could wait on a join the other was not polling to complete.
        stop = threading.Event()

        def spin(consumer: KafkaConsumer) -> None:
            while not stop.is_set():
                before_poll(consumer)  # as the worker's polls do: a join left unfinished
                consumer.poll(100)

        spinning = [threading.Thread(target=spin, args=(c,), daemon=True) for c in (mine, other)]
        for thread in spinning:
            thread.start()
        try:
            _wait(lambda: len(mine.assignment()) == 1 and len(other.assignment()) == 1
                  and mine.group_metadata().generation_id
                  == other.group_metadata().generation_id
                  and not mine._coordinator.rebalance_in_progress()  # noqa: SLF001
                  and not other._coordinator.rebalance_in_progress(),  # noqa: SLF001
                  "one partition each", timeout_s=180)
        finally:
            stop.set()
            for thread in spinning:
                thread.join(30)
        [kept] = mine.assignment()
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=500)
        for partition in (0, 1):  # sent before one flush: each partition's in one batch
            for n in range(PER_PARTITION):
                producer.send(topic, value=f"{partition}/{n}".encode(), partition=partition)
        producer.flush(30)
        producer.close()

        first = polling.gather()
        assert [(m.partition, m.offset) for m in first] == [
            (kept.partition, n) for n in range(MAX_RECORDS)]  # 4 left in the fetcher

        def work() -> None:
            time.sleep(1)  # long work: `run` pauses the partition and polls
            other.close()  # leaves the group: a rebalance during the work
            _wait(lambda: len(mine.assignment()) == 2, "both partitions assigned")
            time.sleep(1.5)  # `run` polls every 0.5 s: the new partition is fetched, sought back

        polling.run(work)
        seen = {(m.partition, m.offset) for m in first}
        deadline = time.monotonic() + 20
        while len(seen) < 2 * PER_PARTITION and time.monotonic() < deadline:
            seen |= {(m.partition, m.offset) for m in polling.gather()}
        missing = {(p, n) for p in (0, 1) for n in range(PER_PARTITION)} - seen
        assert not missing, f"never fetched again: {sorted(missing)}"
    finally:
        polling.close()
        mine.close()
        other.close()
