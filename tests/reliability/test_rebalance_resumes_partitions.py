"""A partition is fetched again after a rebalance that came while the worker's work ran
(PostgreSQL, 2 workers on 4 partitions, dynamic membership; the e2e symptom: after a worker
Pod was deleted mid-ingest, one partition of the other stayed 6 batches behind for minutes,
the ingest never whole, until that worker was deleted too).

While the work runs long, molstream.polling pauses the worker's partitions and keeps polling.
kafka-python 3.0.12's fetcher parks the records it has parsed but not handed out yet for a
partition that is paused (the rest of a fetch that a poll's max_records cut short), and gives
them back only while its in-line slot is None; once records of a partition that was not paused
were parsed meanwhile (those a rebalance assigned during the work, which the loop seeks back
to), the slot stays non-None (drained) and the parked partition is never fetched again.

Here: two workers settle on two partitions each, the activity table is locked (every apply
waits), then the ingest's messages appear at once (copied from a staging topic the fetcher
wrote, each partition's in one request): each worker's first turn takes 16 of its 19 messages,
the rest of one partition's fetch left in the fetcher. The second worker is killed (SIGKILL);
after its session times out the first gets all four partitions while its work still waits;
then the lock is let go. The ingest must complete within a deadline, with one `completed`
event and the tables the CSV implies. INGEST's keys put 9, 10, 9 and 9 messages on the
partitions (no two hold 16: the cut falls inside a partition's fetch)."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import waits
from expected import actual_tables, expected_tables
from harness import Proc, TopicWatch, differences, fetch_args, service_env, wait_for
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from molstream.config import Settings, Topics
from molstream.db import create_schema, make_engine
from molstream.sample import generate
from molstream_dev.ftp import FtpServer
from sqlalchemy import text

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.redis, pytest.mark.ftp,
              pytest.mark.postgres, pytest.mark.timeout(600)]

BATCH = 500
ROWS = 36 * BATCH  # 36 batches and the end marker
PARTITIONS = 4
INGEST = "rebalance-parked-34"
PER_PARTITION = [9, 10, 9, 9]
FILE = "activities.csv"
# Once the lock is let go the ingest takes seconds; a partition left unfetched never ends it.
COMPLETE_S = 120


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("source")
    generate(root / FILE, ROWS, seed=11)
    return root


@pytest.fixture(scope="module")
def ftp(source):
    server = FtpServer(source).start()
    yield server
    server.stop()



def _announced(engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(text("SELECT announced FROM ingest_run WHERE id = :i"),
                                 {"i": INGEST}).scalar())


def _waiting_on_locks(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'")).scalar_one()


def _rebalances(p: Proc) -> int:
    return p.stderr.count("(a rebalance)")


def _assigned(p: Proc) -> set[int] | None:
    """The partitions of the worker's last assignment (kafka-python's INFO line)."""
    lines = [ln for ln in p.stderr.splitlines() if "Updated partition assignment:" in ln]
    return {int(n) for n in re.findall(r"partition=(\d+)", lines[-1])} if lines else None


def _settled(workers: list[Proc]) -> bool:
    """Two partitions each, none shared, and no join begun since."""
    got = [_assigned(w) for w in workers]
    if any(a is None or len(a) != 2 for a in got) or got[0] & got[1]:
        return False
    return all(w.stderr.rsplit("Updated partition assignment:", 1)[1].count("joining") == 0
               for w in workers)


def _copy(bootstrap: str, source_topic: str, target_topic: str) -> int:
    """Every message of `source_topic` to the same partition of `target_topic`, all sent
    before one flush (a record batch per partition: each appears whole)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1_000,
                             batch_size=16 * 1024 * 1024, max_request_size=32 * 1024 * 1024)
    try:
        messages = waits.read_to_end(consumer, source_topic)
        for m in messages:
            producer.send(target_topic, key=m.key, value=m.value, headers=m.headers,
                          partition=m.partition)
        producer.flush(60)
        return len(messages)
    finally:
        producer.close()
        consumer.close()


def _offsets(bootstrap: str, topic: str, group: str) -> str:
    """Committed offset / end offset per partition, for a failure's message."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)  # never subscribes: joins no group
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = consumer.end_offsets(tps)
        return ", ".join(f"p{tp.partition} {consumer.committed(tp)}/{ends[tp]}" for tp in tps)
    finally:
        consumer.close()


def test_partitions_paused_during_a_rebalance_are_fetched_again(
        ftp, source, kafka_bootstrap, redis_url, db_url, tmp_path):
    prefix = f"rp{uuid.uuid4().hex[:10]}"
    root = tmp_path / "run"
    root.mkdir()
    s = Settings(kafka_bootstrap=kafka_bootstrap, topics=Topics(prefix=prefix),
                 database_url=db_url, redis_url=redis_url, reports_dir=root / "reports",
                 work_dir=root / "work", worker_group=f"{prefix}-worker", batch_size=BATCH,
                 retries=5, rows_partitions=PARTITIONS)
    credentials = dict(MOLSTREAM_SOURCE_USERNAME=ftp.user,
                       MOLSTREAM_SOURCE_PASSWORD=ftp.password,
                       MOLSTREAM_ROWS_PARTITIONS=str(PARTITIONS), MOLSTREAM_HEALTH_PORT="0")
    staging = Topics(prefix=f"st{prefix}")
    Proc("fetcher", fetch_args(ftp.url(FILE, with_credentials=False), INGEST),
         service_env(replace(s, topics=staging), **credentials),
         root / "logs").expect_success(300)
    probe = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    try:
        ends = waits.end_offsets(probe, staging.rows)
    finally:
        probe.close()
    assert [ends[tp] for tp in sorted(ends)] == PER_PARTITION, ends  # the test's premise

    env = service_env(s, **credentials)
    engine = make_engine(db_url)
    create_schema(engine)  # before the lock: the workers find an up-to-date schema
    args = ["-v", "worker", "--until-complete", INGEST, "--idle-timeout", "300", "--no-progress"]
    workers = [Proc(f"worker{i}", args, env, root / "logs") for i in range(2)]
    first, second = workers
    lock_engine = make_engine(db_url)
    lock = None
    try:
        wait_for(lambda: _settled(workers), timeout_s=120, watch=workers, poll_s=0.2,
                 what="both workers settled on two partitions each")
        lock = lock_engine.connect()
        lock.begin()
        lock.execute(text("LOCK TABLE activity IN EXCLUSIVE MODE"))  # reads go on, writes wait
        assert _copy(kafka_bootstrap, staging.rows, s.topics.rows) == sum(PER_PARTITION)
        wait_for(lambda: _waiting_on_locks(engine) >= 2, timeout_s=120, watch=workers,
                 what="both workers' first applies waiting on the lock")
        before = _rebalances(first)
        second.kill()  # SIGKILL: its partitions come back after the session timeout
        wait_for(lambda: _rebalances(first) > before and _assigned(first) == set(range(4)),
                 timeout_s=120, watch=[first],
                 what="the first worker assigned all four partitions after the rebalance")
        # The first worker polls every 0.5 s while its work waits: the partitions it got back
        # are fetched (and sought back to) meanwhile. Nothing outside it tells when.
        time.sleep(2)
        lock.rollback()
        lock.close()
        lock = None

        try:
            wait_for(lambda: _announced(engine), timeout_s=COMPLETE_S, watch=[first],
                     what="the ingest announced")
        except AssertionError as e:
            raise AssertionError(
                f"{e}; committed/end offsets: "
                f"{_offsets(kafka_bootstrap, s.topics.rows, s.worker_group)}") from None
        first.expect_success(120)
        assert "Traceback" not in first.stderr, first.stderr[-3000:]
        watch = TopicWatch(s.kafka_bootstrap, s.topics.events)
        try:
            events = watch.json()
        finally:
            watch.close()
        completed = [e for e in events if e["type"] == "completed" and e["ingest_id"] == INGEST]
        assert len(completed) == 1, completed
        assert completed[0]["rows_written"] == ROWS, completed[0]
        problems = differences(actual_tables(engine), expected_tables(source / FILE))
        assert not problems, "\n".join(problems)
        with engine.connect() as conn:
            per_batch = conn.execute(text(
                "SELECT count(*), sum(rows) FROM applied_batch WHERE ingest_id = :i"),
                {"i": INGEST}).one()
        assert tuple(per_batch) == (ROWS // BATCH, ROWS), per_batch
    finally:
        if lock is not None:
            lock.rollback()
            lock.close()
        lock_engine.dispose()
        for p in workers:
            if p.alive:
                p.kill()
        engine.dispose()
