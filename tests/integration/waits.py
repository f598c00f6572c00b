"""Waits for events, never for a length of time: a message on a topic, a row in a table, a line
in a log, a process's exit. Each wait's timeout is only a safety net, generous enough for a
loaded machine, and a wait that runs out says which event it waited for.

Shared by tests/integration (pytest puts this directory on sys.path for its tests, as it does
for expected.py) and tests/reliability (whose conftest.py adds this directory)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable

from kafka import KafkaConsumer, TopicPartition
from molstream.kafka_client_fixes import before_poll

# Safety nets: an event that has not happened by then is not coming.
EVENT_TIMEOUT_S = 120
READ_TIMEOUT_S = 120


def wait_for(predicate: Callable[[], object], *, timeout_s: float, what: str,
             watch: Iterable = (), poll_s: float = 0.05):
    """Poll until `predicate()` is truthy and return its value. Fail early if a watched process
    (anything with `name`, `alive`, `process.returncode` and `stderr`, like harness.Proc) died
    with an error, and after `timeout_s` with a message naming `what` was awaited."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        for p in watch:
            if not p.alive and p.process.returncode != 0:
                raise AssertionError(f"{p.name} exited with {p.process.returncode} while waiting "
                                     f"for {what}; stderr:\n{p.stderr[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(poll_s)


# -- Kafka: what a topic holds now, without waiting for a quiet spell ---------------------------


def partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


def end_offsets(consumer: KafkaConsumer, topic: str) -> dict[TopicPartition, int]:
    """The topic's end offsets now: every message acknowledged so far lies below them. A topic
    that does not exist has none."""
    parts = partitions(consumer, topic)
    return consumer.end_offsets(parts) if parts else {}


def read_to_end(consumer: KafkaConsumer, topic: str, *, timeout_s: float = READ_TIMEOUT_S):
    """Every message of `topic`, from its beginning up to the end offsets it has at this call
    (assigning `consumer` to its partitions). The event awaited is the consumer's position
    reaching those offsets; what was acknowledged before the call is all there."""
    ends = end_offsets(consumer, topic)
    if not any(ends.values()):
        return []
    parts = list(ends)
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    out = []
    deadline = time.monotonic() + timeout_s
    while True:
        at = {tp.partition: consumer.position(tp) for tp in parts}
        if all(at[tp.partition] >= end for tp, end in ends.items()):
            break
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s:.0f}s reading {topic} up to its end offsets "
                f"{ {tp.partition: end for tp, end in ends.items()} }: positions at {at}")
        for batch in consumer.poll(timeout_ms=500).values():
            out.extend(batch)
    return [m for m in out if m.offset < ends[TopicPartition(m.topic, m.partition)]]


def _consumer(bootstrap: str, **config) -> KafkaConsumer:
    return KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                         request_timeout_ms=30_000, **config)


def topic_end(bootstrap: str, topic: str) -> int:
    """How many messages the topic holds now (the sum of its end offsets): 0 proves it empty."""
    consumer = _consumer(bootstrap)
    try:
        return sum(end_offsets(consumer, topic).values())
    finally:
        consumer.close()


def topic_messages(bootstrap: str, topic: str, *, timeout_s: float = READ_TIMEOUT_S,
                   **config) -> list:
    """The messages `read_to_end` gives, through a consumer of their own."""
    consumer = _consumer(bootstrap, **config)
    try:
        return read_to_end(consumer, topic, timeout_s=timeout_s)
    finally:
        consumer.close()


def topic_json(bootstrap: str, topic: str, *, timeout_s: float = READ_TIMEOUT_S) -> list[dict]:
    return [json.loads(m.value) for m in topic_messages(bootstrap, topic, timeout_s=timeout_s)]


def consume(consumer: KafkaConsumer, count: int, *, timeout_s: float = READ_TIMEOUT_S,
            what: str) -> list:
    """The first `count` messages a subscribed consumer receives (its group joined, its
    partitions assigned, the messages fetched), or a failure naming `what` was awaited."""
    out: list = []
    deadline = time.monotonic() + timeout_s
    while len(out) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}: "
                                 f"{len(out)} of {count} message(s) received")
        before_poll(consumer)  # a join kafka-python 3.0.12 left unfinished
        for batch in consumer.poll(timeout_ms=500).values():
            out.extend(batch)
    return out[:count]
