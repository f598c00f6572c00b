"""Work-arounds for bugs of kafka-python 3.0.12 (pinned in uv.lock) that stranded our consumers.

`before_poll(consumer)` is called before every poll of a group member (the worker's loop, the
operator's event consumer). Each work-around reads kafka-python's private state, as little as
it can; each has a test against the real broker that first shows the bug, so an upgrade that
fixes one shows (tests/integration/test_stranded_join.py, test_polling_unparks_partitions.py).
"""

from __future__ import annotations

import logging

from kafka import KafkaConsumer

log = logging.getLogger(__name__)


def before_poll(consumer: KafkaConsumer) -> None:
    finish_stranded_join(consumer)
    unpark(consumer)


def finish_stranded_join(consumer: KafkaConsumer) -> None:
    """Make the next poll join the group again when kafka-python left a join stranded.

    A poll awaits the join (JoinGroup, then SyncGroup) only while `need_rejoin()` is true, and
    leaves it in flight when its own timeout ends first. A rejoin caused by the topic's
    metadata changing (a topic created after the consumer subscribed, partitions added) or by
    a subscription change is not flagged: `need_rejoin()` turns false as soon as the JoinGroup
    is sent (subscription) or the leader has computed the assignment (metadata). A poll that
    ends then, or a retriable error met inside the join, leaves it stranded for good: "still
    rebalancing", no heartbeat, commits refused. The member keeps fetching its old partitions
    while the broker drops it and gives them to others (seen in CI: a consumer that never got
    its partition, for three minutes, while the other member held both).

    Asking to rejoin lets the next poll await the join if it is still in flight, or redo it
    (one more rebalance of the group) if it has ended unread. Each consumer is polled by one
    thread, but the check holds the coordinator's lock all the same: its network thread must
    not end a healthy join between the two reads.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None:
        return
    with coordinator._lock:  # noqa: SLF001 - kafka-python 3.0.12's own lock for this state
        stranded = coordinator.rebalance_in_progress() and not coordinator.need_rejoin()
        if stranded:
            coordinator.request_rejoin()
    if stranded:
        log.info("consumer group %s: joining again: kafka-python left a join unfinished",
                 consumer.config["group_id"])


def unpark(consumer: KafkaConsumer) -> None:
    """Let kafka-python's fetcher hand back the records it parked for a partition once paused.

    kafka-python 3.0.12 (its KAFKA-7548) sets aside the records it parsed but has not handed
    out yet for a partition that is paused (the rest of a fetch that a poll's max_records cut
    short), and fetches nothing more for that partition until they are handed out. It takes
    them back (the partition resumed) only while its in-line slot is None; but a slot whose
    records were all handed out stays set, drained. So once records of a partition that was
    not paused went through the slot meanwhile (those of the partitions a rebalance assigned
    during the work, which `Polling.run` seeks back to), a parked partition was never fetched
    again: its committed offset stood still, the ingest never whole, until a rebalance took the
    partition away. A drained slot is as good as None: it is cleared while anything is parked.
    (The fetcher runs polls on the caller's thread; its network thread only reads it.)"""
    fetcher = getattr(consumer, "_fetcher", None)
    if getattr(fetcher, "_paused_partition_records", None) and not getattr(
            fetcher, "_next_partition_records", None):
        fetcher._next_partition_records = None  # noqa: SLF001 - kafka-python 3.0.12's slot
