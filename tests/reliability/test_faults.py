"""Faults survived: each test ingests the same generated file of 200,000 rows through real
processes (`python -m molstream fetch` / `worker`), the real broker, Redis and FTP server, breaks
one component in the middle, and ends by comparing the database table by table with a clean run
of the same file: every column of every row but the timestamps, the rows no update touched, the
pipeline's bookkeeping (ingest_run, applied_batch, the report), and what the CSV itself implies
(`expected.py`, computed without molstream).

The clean run's batches stay on their topic; the tests that break the worker's side (the worker
itself, Redis, the SQLite file) replay them with a consumer group and a database of their own.
The tests that break the fetcher's side (the fetcher, the broker, the FTP connection) fetch the
file again onto topics of their own.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import sqlite3
import time
import uuid
from pathlib import Path

import pytest
import redis
from expected import actual_tables, expected_tables
from harness import (
    Proc,
    TopicWatch,
    applied_batches,
    bookkeeping,
    content,
    differences,
    fetch_args,
    service_env,
    sqlite_path,
    touched,
    wait_for,
    worker_args,
)
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from molstream.config import Settings, Topics
from molstream.db import DIMENSIONS, make_engine
from molstream.publish import ensure_topics
from molstream.sample import generate
from molstream_dev.ftp import FtpServer
from molstream_dev.redis import RedisServer
from sqlalchemy import select
from waits import topic_messages

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.redis, pytest.mark.ftp,
              pytest.mark.timeout(300)]

ROWS = 200_000
SEED = 6
BATCH = 2_000
BATCHES = ROWS // BATCH  # the file has no bad row: every batch is full
INGEST = "reliability-1"
FILE = "activities.csv"


@dataclasses.dataclass
class Clean:
    settings: Settings
    content: dict
    touched: dict
    bookkeeping: dict


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("source")
    generate(root / FILE, ROWS, seed=SEED)
    return root


@pytest.fixture(scope="module")
def expected(source) -> dict:
    return expected_tables(source / FILE)


@pytest.fixture(scope="module")
def ftp(source):
    server = FtpServer(source).start()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


def _settings(root: Path, kafka_bootstrap: str, redis_url: str, **changes) -> Settings:
    prefix = f"rel{uuid.uuid4().hex[:10]}"
    root.mkdir(parents=True, exist_ok=True)
    base = Settings(kafka_bootstrap=kafka_bootstrap, topics=Topics(prefix=prefix),
                    database_url=f"sqlite:///{root / 'molstream.sqlite'}", redis_url=redis_url,
                    reports_dir=root / "reports", work_dir=root / "work",
                    worker_group=f"{prefix}-worker", batch_size=BATCH, retries=5)
    return dataclasses.replace(base, **changes)


def _env(settings: Settings, ftp: FtpServer) -> dict[str, str]:
    # Credentials the way a Secret hands them over: environment, never the URL.
    return service_env(settings, MOLSTREAM_SOURCE_USERNAME=ftp.user,
                       MOLSTREAM_SOURCE_PASSWORD=ftp.password)


def _url(ftp: FtpServer) -> str:
    return ftp.url(FILE, with_credentials=False)


@pytest.fixture(scope="module")
def clean(tmp_path_factory, kafka_bootstrap, redis_url, ftp, expected) -> Clean:
    """The reference: one undisturbed run of the file. Its batches stay on its topic."""


    root = tmp_path_factory.mktemp("clean")
    s = _settings(root, kafka_bootstrap, redis_url)
    env = _env(s, ftp)
    fetcher = Proc("fetcher", fetch_args(_url(ftp), INGEST), env, root / "logs")
    fetcher.expect_success(180)
    worker = Proc("worker", worker_args(INGEST), env, root / "logs")
    worker.expect_success(180)
    engine = make_engine(s.database_url)
    try:
        problems = differences(actual_tables(engine), expected)
        assert not problems, "the clean run itself is wrong:\n" + "\n".join(problems)
        ref = Clean(s, content(engine), touched(engine), bookkeeping(engine))
    finally:
        engine.dispose()
    run = ref.bookkeeping["ingest_run"][0]
    assert (run["status"], run["batches_applied"], run["rows_written"]) == \
        ("completed", BATCHES, ROWS)
    assert ref.touched == dict.fromkeys(ref.touched, 0)  # one file, unique ids: no update
    return ref


def _replay_settings(clean: Clean, root: Path, **changes) -> Settings:
    """The clean run's topics, with a consumer group, a database and reports of this test."""
    root.mkdir(parents=True, exist_ok=True)
    return dataclasses.replace(
        clean.settings, database_url=f"sqlite:///{root / 'molstream.sqlite'}",
        worker_group=f"{clean.settings.topics.prefix}-{uuid.uuid4().hex[:8]}",
        reports_dir=root / "reports", work_dir=root / "work", **changes)


def assert_same_as_clean(settings: Settings, clean: Clean, expected: dict) -> None:
    engine = make_engine(settings.database_url)
    try:
        problems = differences(content(engine), clean.content)
        problems += differences(actual_tables(engine), expected)
        problems += differences(bookkeeping(engine), clean.bookkeeping)
        problems += differences(touched(engine), clean.touched)
    finally:
        engine.dispose()
    assert not problems, "the database differs from the clean run's:\n" + "\n".join(problems)
    report = settings.reports_dir / f"{INGEST}.csv"
    assert f"summary,rows_written,{ROWS}" in report.read_text()


def _committed_offset(bootstrap: str, group: str, topic: str) -> int:
    """The group's committed offset on the (one-partition) topic; 0 before any commit."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    try:
        return consumer.committed(TopicPartition(topic, 0)) or 0
    finally:
        consumer.close()


def _completed_events(watch: TopicWatch) -> list[dict]:
    return [e for e in watch.json() if e["type"] == "completed" and e["ingest_id"] == INGEST]


# -- the worker's side: replays of the clean run's batches ---------------------------------------


@pytest.mark.parametrize("membership", ["dynamic", "static"])
def test_worker_killed_mid_ingest_then_restarted(clean, expected, procs, tmp_path, membership):
    """SIGKILL while applying; the restarted worker gets the batches whose offsets were not
    committed again, recognises those the database already holds, and applies the rest.
    (Dynamic: the restart waits for the dead member's Kafka session, 10 s, to expire. Static,
    under the same MOLSTREAM_WORKER_INSTANCE_ID: it takes the dead one's place at once.)"""
    s = _replay_settings(clean, tmp_path / "run",
                         worker_instance_id="rel-worker" if membership == "static" else "")
    env = service_env(s)
    worker = procs("worker", worker_args(INGEST), env)
    wait_for(lambda: applied_batches(s.database_url) >= 1, timeout_s=120,
             what="a first batch applied", watch=[worker], poll_s=0.005)
    assert worker.kill() == -signal.SIGKILL
    at_kill = applied_batches(s.database_url)
    assert at_kill < BATCHES, "the worker finished before it could be killed"
    # Offsets are committed only after the database: never ahead of what it holds.
    assert _committed_offset(s.kafka_bootstrap, s.worker_group, s.topics.rows) <= at_kill
    procs("worker", worker_args(INGEST), env).expect_success(180)
    assert_same_as_clean(s, clean, expected)


def test_a_second_worker_under_the_same_instance_id_stops_the_first(clean, expected, procs,
                                                                    tmp_path):
    """Two workers given one MOLSTREAM_WORKER_INSTANCE_ID: the second takes the first one's
    place in the group; the first, refused at its next offset commit, stops with an error
    naming the id. (Both here on one SQLite file, which the chart never allows: the first has
    applied the ingest and waits for more when the second arrives.)"""
    s = _replay_settings(clean, tmp_path / "run", worker_instance_id="rel-shared")
    env = service_env(s)
    first = procs("worker", worker_args("an-ingest-never-sent"), env)
    wait_for(lambda: applied_batches(s.database_url) == BATCHES, timeout_s=120,
             what="the ingest applied", watch=[first])
    (member,) = _members(s.kafka_bootstrap, s.worker_group)
    assert member[1] == "rel-shared"  # the broker knows the worker by its instance id
    second = procs("worker", worker_args("an-ingest-never-sent", idle_timeout_s=30), env)
    assert first.wait(60) != 0
    assert "another worker joined" in first.stderr and "'rel-shared'" in first.stderr
    assert second.alive
    (taken,) = _members(s.kafka_bootstrap, s.worker_group)
    assert taken[0] != member[0] and taken[1] == "rel-shared"
    second.expect_success(60)
    assert_same_as_clean(s, clean, expected)


def _members(bootstrap: str, group: str) -> list[tuple[str, str | None]]:
    """(member id, instance id) of each member of the consumer group."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        (group_info,) = admin.describe_groups([group]).values()
        return [(m["member_id"], m.get("group_instance_id")) for m in group_info["members"]]
    finally:
        admin.close()


def test_redis_stopped_mid_ingest(clean, expected, procs, tmp_path):
    """Redis goes away mid-ingest: the worker goes on; restarted while Redis is still down,
    with cold caches (every id look-up must reach the database), it finishes the ingest."""
    own = RedisServer().start()
    try:
        s = _replay_settings(clean, tmp_path / "run", redis_url=own.url)
        env = service_env(s)
        worker = procs("worker", worker_args(INGEST), env)
        wait_for(lambda: applied_batches(s.database_url) >= 1, timeout_s=120,
                 what="a first batch applied", watch=[worker], poll_s=0.005)
        # In use: ids reach Redis once their transaction has committed.
        wait_for(lambda: redis.Redis.from_url(own.url).keys("molstream:*"), timeout_s=30,
                 what="ids in Redis", watch=[worker], poll_s=0.005)
        before = applied_batches(s.database_url)
        own.stop()
        wait_for(lambda: applied_batches(s.database_url) > before, timeout_s=60,
                 what="a batch applied with Redis down", watch=[worker])
        assert worker.kill(signal.SIGTERM) == 0  # a rolling restart: graceful stop
        assert applied_batches(s.database_url) < BATCHES
        restarted = procs("worker", worker_args(INGEST), env)
        restarted.expect_success(180)
        assert "Redis unavailable" in restarted.stderr
    finally:
        own.stop()
        shutil.rmtree(own.dir, ignore_errors=True)
    assert_same_as_clean(s, clean, expected)


def test_redis_flushed_mid_ingest(clean, expected, procs, tmp_path):
    """Redis loses every key mid-ingest, and the worker restarts with an empty process cache:
    ids come from the database, and Redis ends up holding exactly the database's ids."""
    own = RedisServer().start()
    try:
        s = _replay_settings(clean, tmp_path / "run", redis_url=own.url)
        env = service_env(s)
        worker = procs("worker", worker_args(INGEST), env)
        wait_for(lambda: applied_batches(s.database_url) >= 1, timeout_s=120,
                 what="a first batch applied", watch=[worker], poll_s=0.005)
        client = redis.Redis.from_url(own.url)
        wait_for(lambda: client.keys("molstream:*"), timeout_s=30, what="ids in Redis",
                 watch=[worker], poll_s=0.005)
        own.flush()
        assert worker.kill(signal.SIGTERM) == 0
        assert applied_batches(s.database_url) < BATCHES
        procs("worker", worker_args(INGEST), env).expect_success(180)
        cached = {key.decode().rsplit(":", 1)[1]: {f.decode(): int(i) for f, i in
                                                   client.hgetall(key).items()}
                  for key in client.keys("molstream:*")}
        client.close()
    finally:
        own.stop()
        shutil.rmtree(own.dir, ignore_errors=True)
    assert_same_as_clean(s, clean, expected)
    engine = make_engine(s.database_url)
    try:
        with engine.connect() as conn:
            for name, table in DIMENSIONS.items():
                ids = {(repr(v) if isinstance(v, float) else v): i
                       for v, i in conn.execute(select(table.c.value, table.c.id))}
                assert cached[name] == ids, f"Redis disagrees with the database on {name}"
    finally:
        engine.dispose()


def _take_write_lock(path: Path, worker) -> sqlite3.Connection:
    """BEGIN IMMEDIATE in one of the short gaps between the worker's transactions. SQLite's own
    busy handler backs off to 100 ms sleeps and, against a writer that starts its next
    transaction within milliseconds, would only get the lock once the ingest is over."""
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    deadline = time.monotonic() + 60
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return conn
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline or not worker.alive:
                conn.close()
                raise
            time.sleep(0.0005)


def test_sqlite_file_held_by_another_writer(clean, expected, procs, tmp_path):
    """Another connection holds the write lock (BEGIN IMMEDIATE) mid-ingest until the worker
    has run into it twice (its busy timeout cut to 1 s): the worker logs the busy database,
    applies nothing meanwhile, does not give up, and goes on once the lock is released."""
    s = _replay_settings(clean, tmp_path / "run")
    worker = procs("worker", worker_args(INGEST), service_env(s, MOLSTREAM_DB_BUSY_TIMEOUT_S="1"))
    wait_for(lambda: applied_batches(s.database_url) >= 1, timeout_s=120,
             what="a first batch applied", watch=[worker], poll_s=0.005)
    other = _take_write_lock(sqlite_path(s.database_url), worker)
    try:
        held = applied_batches(s.database_url)
        assert held < BATCHES, "the worker finished before the write lock could be taken"
        mark = len(worker.stderr)
        wait_for(lambda: worker.stderr[mark:].count("database busy or unavailable") >= 2,
                 timeout_s=120, what="the worker's second retry on the locked database",
                 watch=[worker])
        assert worker.alive, f"the worker gave up on a locked database:\n{worker.stderr}"
        assert applied_batches(s.database_url) == held
    finally:
        other.execute("ROLLBACK")
        other.close()
    worker.expect_success(180)
    assert "database is locked" in worker.stderr
    assert_same_as_clean(s, clean, expected)


# -- the fetcher's side: fresh fetches onto topics of their own ----------------------------------


def test_fetcher_killed_while_publishing_then_run_again(clean, expected, procs, tmp_path, ftp,
                                                        kafka_bootstrap, redis_url, topic_watch):
    s = _settings(tmp_path / "run", kafka_bootstrap, redis_url)
    ensure_topics(s.kafka_bootstrap, s.topics)
    env = _env(s, ftp)
    rows = topic_watch(s.topics.rows)
    worker = procs("worker", worker_args(INGEST), env)
    fetcher = procs("fetcher", fetch_args(_url(ftp), INGEST), env)
    wait_for(lambda: rows.end() >= 2, timeout_s=120, what="2 batches published",
             watch=[fetcher, worker], poll_s=0.01)
    assert fetcher.kill() == -signal.SIGKILL
    procs("fetcher", fetch_args(_url(ftp), INGEST), env).expect_success(180)
    worker.expect_success(180)
    # Each run's batches carry its start time (header t0); the end marker has none. What the
    # killed run had on the wire when it died may still have landed: count it, do not race it.
    runs: dict[bytes | None, int] = {}
    for m in topic_messages(s.kafka_bootstrap, s.topics.rows):
        t0 = dict(m.headers).get("t0")
        runs[t0] = runs.get(t0, 0) + 1
    assert runs.pop(None) == 1, "one end marker: the killed run never published its own"
    (first, second) = sorted(runs.items(), key=lambda run: float(run[0]))
    assert second[1] == BATCHES and 2 <= first[1] < BATCHES
    assert_same_as_clean(s, clean, expected)
    assert len(_completed_events(topic_watch(s.topics.events))) == 1


def test_kafka_broker_stopped_mid_ingest(clean, expected, procs, tmp_path, ftp, kafka_broker,
                                         kafka_bootstrap, redis_url, topic_watch):
    """The broker stops while the fetcher publishes and the worker applies, and stays down
    until both have run into it (a Kafka client error in each one's log); both recover by
    themselves once it is back. The fetcher is held (SIGSTOP) from its second batch until the
    broker is down, so that however fast the machine, the outage falls mid-publish."""
    if kafka_broker is None:
        pytest.skip("MOLSTREAM_TEST_KAFKA: the broker is not ours to stop")
    s = _settings(tmp_path / "run", kafka_bootstrap, redis_url)
    ensure_topics(s.kafka_bootstrap, s.topics)
    env = _env(s, ftp)
    rows = TopicWatch(kafka_bootstrap, s.topics.rows)
    worker = procs("worker", worker_args(INGEST), env)
    fetcher = procs("fetcher", fetch_args(_url(ftp), INGEST), env)
    try:
        wait_for(lambda: rows.end() >= 2, timeout_s=120, what="2 batches published",
                 watch=[fetcher, worker], poll_s=0.01)
        fetcher.process.send_signal(signal.SIGSTOP)
        assert rows.end() < BATCHES, "the fetcher finished publishing before it could be held"
    finally:
        rows.close()
    assert fetcher.alive and worker.alive
    marks = {p: len(p.stderr) for p in (fetcher, worker)}
    kafka_broker.stop()
    down = time.monotonic()
    try:
        fetcher.process.send_signal(signal.SIGCONT)
        for p, mark in marks.items():
            wait_for(lambda p=p, mark=mark: " kafka." in p.stderr[mark:], timeout_s=120,
                     what=f"the {p.name} logging the broker's outage", watch=[fetcher, worker])
        assert fetcher.alive and worker.alive, "a process gave up while the broker was down"
    finally:
        kafka_broker.start()
        outage = time.monotonic() - down
    fetcher.expect_success(240)
    worker.expect_success(240)
    # The producer lived through the outage: its publish phase spans it.
    assert json.loads(fetcher.stdout)["seconds"]["publish"] > outage
    assert_same_as_clean(s, clean, expected)
    assert len(_completed_events(topic_watch(s.topics.events))) == 1


def test_ftp_connection_cut_mid_download(clean, expected, procs, tmp_path, source,
                                         kafka_bootstrap, redis_url, topic_watch):
    """The server drops the data connection 20 MB into the file: the fetcher resumes with REST,
    and every row is read exactly once (none rejected as a duplicate or as broken)."""
    cutting = FtpServer(source, cut_after_bytes=20_000_000).start()
    try:
        s = _settings(tmp_path / "run", kafka_bootstrap, redis_url)
        env = _env(s, cutting)
        fetcher = procs("fetcher", fetch_args(_url(cutting), INGEST), env)
        worker = procs("worker", worker_args(INGEST), env)
        fetcher.expect_success(180)
        worker.expect_success(180)
        assert cutting.cuts == 1
    finally:
        cutting.stop()
        shutil.rmtree(cutting.dir, ignore_errors=True)
    assert "interrupted" in fetcher.stderr and "from byte" in fetcher.stderr
    assert '"rows_total": 200000' in fetcher.stdout and '"rows_rejected": 0' in fetcher.stdout
    assert topic_watch(s.topics.rejected).end() == 0
    assert_same_as_clean(s, clean, expected)
