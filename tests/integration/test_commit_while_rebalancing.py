"""A worker whose work ends while its consumer group rebalances commits once it has joined
again, without calling it an outage. One of the polls made during the work (or while gathering)
sends the JoinGroup of a rebalance another worker began, and returns before the join ends;
kafka-python finishes the join only in a later poll and refuses a commit until then
(RebalanceInProgressError). The worker used to take that for Kafka being unreachable: it
retried the commit without polling, the join never ended, the broker dropped the member, and
after MOLSTREAM_KAFKA_OUTAGE_S it exited 2 ("unreachable ... while trying to commit offsets").
tests/reliability/test_rebalance_while_busy.py is the same with worker processes."""

from __future__ import annotations

import threading
import time

import pytest
import waits
from molstream.kafka_client_fixes import before_poll
from molstream.polling import make_consumer
from molstream.sample import generate
from molstream.worker import Worker

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

OUTAGE_S = 15  # MOLSTREAM_KAFKA_OUTAGE_S: what the commit used to spend, then exit 2


def test_a_commit_while_the_group_rebalances_waits_for_the_join(make_pipeline, tmp_path,
                                                                caplog):
    p = make_pipeline(kafka_outage_s=OUTAGE_S)
    generate(tmp_path / "rows.csv", 3_000, seed=3)
    p.fetch((tmp_path / "rows.csv").as_uri(), "commit-rebalancing")
    worker = Worker(p.settings)
    other = None
    stop = threading.Event()
    try:
        consumer, coordinator = worker.consumer, worker.consumer._coordinator  # noqa: SLF001
        messages = waits.wait_for(worker._polling.gather, timeout_s=waits.EVENT_TIMEOUT_S,  # noqa: SLF001
                                  what="the worker's first messages")
        assert messages and consumer.assignment()
        generation = consumer.group_metadata().generation_id
        consumer.pause(*consumer.assignment())  # what the loop's polls during the work do

        other = make_consumer(p.settings)  # another worker joins: a rebalance

        def other_polls() -> None:
            while not stop.is_set():
                before_poll(other)  # as the worker's polls do: a join left unfinished
                other.poll(timeout_ms=100)

        thread = threading.Thread(target=other_polls, name="other-worker")
        thread.start()

        def joining() -> bool:  # a poll during the work sends JoinGroup and returns at once
            consumer.poll(timeout_ms=0)
            return coordinator.rebalance_in_progress()

        waits.wait_for(joining, timeout_s=waits.EVENT_TIMEOUT_S,
                       what="the worker's consumer to begin joining the rebalance")
        consumer.resume(*consumer.assignment())
        started = time.monotonic()
        worker._commit()  # noqa: SLF001 - what the loop does once the work has ended
        took = time.monotonic() - started
        assert not coordinator.rebalance_in_progress()
        assert consumer.group_metadata().generation_id > generation
        assert took < OUTAGE_S / 2, f"the commit took {took:.0f} s"
        assert "unreachable" not in caplog.text and "Kafka unavailable" not in caplog.text
    finally:
        stop.set()
        if other is not None:
            thread.join(30)
            other.close()
        worker.close()
