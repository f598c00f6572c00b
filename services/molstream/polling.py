"""The worker's own work in a thread of its own, while its consume loop keeps the consumer in
its group.

kafka-python 3 already drives the network, heartbeats included, on a thread of its own
(`kafka-io-*`); what stays with the application is `poll()`: a member that does not call it
within max.poll.interval.ms leaves its group, and the batches it is applying go to another
member. So the loop hands each poll's work (apply, settle, announce, rebuild indexes) to one
thread, and when that work is slow (a database lock held by someone else, indexes rebuilt at
the end of a large ingest) it pauses its partitions and keeps calling `poll()`: rebalances
and fencing are answered, nothing new is fetched, and the offsets are still committed by the
loop only after the work is done. Records a poll returns meanwhile (partitions a rebalance
assigned) are sought back to, to be fetched again once the work is done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as wait_for_future
from typing import TypeVar

from kafka import KafkaConsumer
from kafka.errors import KafkaError

from .config import Settings
from .health import Health
from .kafka_client_fixes import before_poll

log = logging.getLogger(__name__)

T = TypeVar("T")
# The consumer's group timings. Only the loop must poll within MAX_POLL_INTERVAL_MS: the work
# runs on a thread of its own. A killed worker's partitions return to its replacement after
# SESSION_TIMEOUT_MS (heartbeats come from kafka-python's own thread).
MAX_POLL_INTERVAL_MS = 300_000
SESSION_TIMEOUT_MS = 10_000
HEARTBEAT_INTERVAL_MS = 3_000
# Bytes a fetch asks for (a row batch is ~0.8 MB; a larger one still comes whole, KIP-74).
# kafka-python reads a response on its network thread in one go: 16 MB fetches held that
# thread for 50-70 ms of CPU at a time (>100 ms on a busy machine: "blocking the event
# loop", heartbeats late); 2 MB ones for ~10 ms, at the same throughput.
FETCH_MAX_BYTES = 2 * 1024 * 1024
MAX_PARTITION_FETCH_BYTES = 1024 * 1024
# A turn's work takes up to this many messages: a poll's, and what the next fetches bring at
# once (a 2 MB fetch holds two or three batches; SQLite applies a turn's row batches in one
# transaction, and 1M rows took 17 s in 50 transactions, 11 s in 14).
MAX_RECORDS = 16
GATHER_MS = 100
# Work that ends within this long never pauses anything; slower work polls this often (far
# below any max.poll.interval.ms), each poll waiting up to KEEP_POLLING_MS (a rebalance's
# JoinGroup and SyncGroup complete across polls, not within one that returns at once).
KEEP_POLLING_S = 0.5
KEEP_POLLING_MS = 100
# After the work, a consumer whose group is rebalancing keeps polling (partitions paused) for up
# to this long to join again before the loop commits: kafka-python refuses a commit meanwhile
# (RebalanceInProgressError), and only a poll completes the join.
REJOIN_S = 30.0


def make_consumer(settings: Settings) -> KafkaConsumer:
    """The worker's consumer of the rows topic (offsets committed by the worker)."""
    return KafkaConsumer(
        settings.topics.rows,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.worker_group,
        group_instance_id=settings.worker_instance_id or None,
        client_id="molstream-worker",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
        fetch_max_bytes=FETCH_MAX_BYTES,
        max_poll_records=MAX_RECORDS,
        max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        reconnect_backoff_max_ms=5_000,
        **settings.kafka_security.client_kwargs(),  # TLS, SASL, mTLS (molstream.kafka_security)
    )


class Polling:
    """Runs work on its own thread; `poll` (the loop's, raising what ends the worker, such as
    fencing) is called while it runs long. Each poll is a turn of the loop for `health`."""

    def __init__(self, consumer: KafkaConsumer, poll: Callable[..., dict],
                 health: Health) -> None:
        self._consumer = consumer
        self._polled = poll
        self._health = health
        self._generation: int | None = None  # of the consumer group, once joined
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="molstream-apply")

    def gather(self) -> list:
        """A poll's messages, and those that follow at once, up to MAX_RECORDS, in order."""
        messages = [m for batch in self._poll(500).values() for m in batch]
        while messages and len(messages) < MAX_RECORDS:
            try:
                more = self._poll(GATHER_MS, MAX_RECORDS - len(messages))
            except KafkaError:  # met again by the next turn's poll: these are already taken
                break
            if not more:
                break
            messages += [m for batch in more.values() for m in batch]
        return messages

    def turned(self) -> None:
        """The loop polled (liveness); ready once the consumer has joined its group. A new
        generation of the group is logged: a rebalance (the benchmarks count them)."""
        self._health.turned()
        generation = self._consumer.group_metadata().generation_id
        if generation < 0 or generation == self._generation:
            return
        if self._generation is not None:
            log.info("consumer group %s: generation %d, was %d (a rebalance)",
                     self._consumer.config["group_id"], generation, self._generation)
        self._generation = generation
        self._health.joined = True

    def run(self, work: Callable[[], T]) -> T:
        """`work()`'s result (or exception), once it has ended: this never returns or raises
        while the work still runs, so nothing the loop does next (commit, close) overtakes it."""
        future = self._thread.submit(work)
        paused: set = set()
        failure: BaseException | None = None
        try:
            while True:
                try:
                    return future.result(timeout=KEEP_POLLING_S)
                except FutureTimeout:
                    pass
                if failure is not None:
                    continue  # fenced or failed: wait for the work, then say so
                try:
                    paused |= self._pause()
                    for tp, records in self._poll(KEEP_POLLING_MS).items():
                        # Assigned during the work: fetched again once it is done.
                        self._consumer.seek(tp, records[0].offset)
                    paused |= self._pause()
                except KafkaError as e:  # the loop's next poll meets it again, if it lasts
                    log.debug("while the worker's work runs: %s", e)
                except Exception as e:  # noqa: BLE001 - raised once the work has ended
                    failure = e
                self.turned()
        finally:
            wait_for_future([future])
            self._resume(paused)
            if failure is not None and future.done() and not future.exception():
                raise failure

    def rejoin(self, limit_s: float = REJOIN_S) -> bool:
        """Keep polling, partitions paused, while the group rebalances: whether the consumer
        is in a stable group now. A poll that began the join (one of `run`'s or `gather`'s)
        may have returned before the join ended; kafka-python finishes it only in a later
        poll, refuses an offset commit until then, and sends no heartbeat meanwhile. Records
        of partitions the rebalance assigned are sought back to, as in `run`."""
        coordinator = self._consumer._coordinator  # noqa: SLF001 - no public API
        deadline = time.monotonic() + limit_s
        paused: set = set()
        try:
            while coordinator.rebalance_in_progress() and time.monotonic() < deadline:
                paused |= self._pause()
                try:
                    polled = self._poll(KEEP_POLLING_MS)
                except KafkaError as e:  # the loop's next poll meets it again, if it lasts
                    log.debug("while rejoining the group: %s", e)
                    break
                for tp, records in polled.items():
                    self._consumer.seek(tp, records[0].offset)
                paused |= self._pause()
                self.turned()
        finally:
            self._resume(paused)
        return not coordinator.rebalance_in_progress()

    def close(self) -> None:
        self._thread.shutdown(wait=True)

    def _poll(self, *args) -> dict:
        """Every poll of the loop, kafka-python's own bugs first worked around."""
        before_poll(self._consumer)
        return self._polled(*args)

    def _pause(self) -> set:
        assigned = set(self._consumer.assignment())
        fresh = assigned - set(self._consumer.paused())
        if fresh:
            self._consumer.pause(*fresh)
        return fresh

    def _resume(self, paused: set) -> None:
        mine = paused & set(self._consumer.assignment())
        if mine:
            self._consumer.resume(*mine)

