"""Rebalances while every apply waits on a lock (PostgreSQL, 2 workers on 4 partitions): another
connection holds the activity table (EXCLUSIVE: reads go on, writes wait) while a third worker
joins and is then killed, or stopped, before its own apply could go on. The waiting workers
keep polling through both rebalances (molstream.polling) and commit only once they have joined
again. Afterwards: one `completed` event, the tables equal what the CSV implies, bookkeeping
consistent, every batch recorded once. (tests/integration/test_worker_loop.py is one worker
keeping its place through a long lock, without a rebalance.)"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest
from expected import actual_tables, expected_tables
from harness import Proc, TopicWatch, differences, fetch_args, ingest_state, service_env, wait_for
from molstream.config import Settings, Topics
from molstream.db import make_engine
from molstream.sample import generate
from molstream_dev.ftp import FtpServer
from sqlalchemy import text

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.redis, pytest.mark.ftp,
              pytest.mark.postgres, pytest.mark.timeout(600)]

ROWS = 24_000
BATCH = 1_000
PARTITIONS = 4
INGEST = "rebalance-under-lock-1"
FILE = "activities.csv"


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("source")
    generate(root / FILE, ROWS, seed=5)
    return root


@pytest.fixture(scope="module")
def ftp(source):
    server = FtpServer(source).start()
    yield server
    server.stop()




def _waiting_on_locks(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'")).scalar_one()


def _rebalances(p: Proc) -> int:
    return p.stderr.count("(a rebalance)")


@pytest.mark.parametrize("third_leaves", ["sigkill", "sigterm"])
def test_rebalances_while_applies_wait_on_a_lock(ftp, source, kafka_bootstrap, redis_url,
                                                 db_url, tmp_path, third_leaves):
    prefix = f"ul{uuid.uuid4().hex[:10]}"
    root = tmp_path / "run"
    root.mkdir()
    s = Settings(kafka_bootstrap=kafka_bootstrap, topics=Topics(prefix=prefix),
                 database_url=db_url, redis_url=redis_url, reports_dir=root / "reports",
                 work_dir=root / "work", worker_group=f"{prefix}-worker", batch_size=BATCH,
                 retries=5, rows_partitions=PARTITIONS)
    env = service_env(s, MOLSTREAM_SOURCE_USERNAME=ftp.user,
                      MOLSTREAM_SOURCE_PASSWORD=ftp.password,
                      MOLSTREAM_ROWS_PARTITIONS=str(PARTITIONS))
    Proc("fetcher", fetch_args(ftp.url(FILE, with_credentials=False), INGEST), env,
         root / "logs").expect_success(300)
    engine = make_engine(db_url)
    args = ["-v", "worker", "--until-complete", INGEST, "--idle-timeout", "300", "--no-progress"]
    workers = [Proc(f"worker{i}", args, env, root / "logs") for i in range(2)]
    lock_engine = lock = third = None
    try:
        wait_for(lambda: ingest_state(engine, INGEST)[0] >= 3, timeout_s=120, what="3 batches",
                 watch=workers, poll_s=0.01)
        lock_engine = make_engine(db_url)
        lock = lock_engine.connect()
        lock.begin()
        lock.execute(text("LOCK TABLE activity IN EXCLUSIVE MODE"))
        wait_for(lambda: _waiting_on_locks(engine) >= 2, timeout_s=120, watch=workers,
                 what="both workers' applies waiting on the lock")
        before = [_rebalances(w) for w in workers]
        third = Proc("worker2", args, env, root / "logs")
        wait_for(lambda: all(_rebalances(w) > n for w, n in zip(workers, before, strict=True)),
                 timeout_s=120, watch=[*workers, third],
                 what="the rebalance for the third worker, seen by both waiting workers")
        # Still locked: nothing applied meanwhile.
        assert ingest_state(engine, INGEST)[1] != "completed"
        if third_leaves == "sigkill":
            before = [_rebalances(w) for w in workers]
            third.kill()
            wait_for(lambda: all(_rebalances(w) > n for w, n in zip(workers, before,
                                                                     strict=True)),
                     timeout_s=120, watch=workers,
                     what="the rebalance after the third worker was killed (its session "
                          "timing out)")
        else:  # it stops once its own apply, waiting on the lock too, is done
            os.kill(third.process.pid, signal.SIGTERM)
        lock.rollback()
        lock.close()
        lock = None
        if third_leaves == "sigterm":
            assert third.wait(120) == 0, third.stderr[-3000:]
        wait_for(lambda: ingest_state(engine, INGEST)[2], timeout_s=300,
                 what="the ingest announced", watch=workers)
        for w in workers:
            w.expect_success(120)
        for p in [*workers, third]:
            assert "unreachable" not in p.stderr and "Traceback" not in p.stderr, p.stderr
        watch = TopicWatch(s.kafka_bootstrap, s.topics.events)
        try:
            events = watch.json()
        finally:
            watch.close()
        completed = [e for e in events if e["type"] == "completed" and e["ingest_id"] == INGEST]
        assert len(completed) == 1, completed
        assert completed[0]["rows_written"] == ROWS, completed[0]
        problems = differences(actual_tables(engine), expected_tables(source / FILE))
        with engine.connect() as conn:
            run = conn.execute(text(
                "SELECT status, rows_written FROM ingest_run WHERE id = :i"),
                {"i": INGEST}).mappings().one()
            per_batch = conn.execute(text(
                "SELECT count(*), sum(rows), sum((written->>'activity')::int) FROM "
                "applied_batch WHERE ingest_id = :i"), {"i": INGEST}).one()
            parts = conn.execute(text("SELECT count(*) FROM applied_part")).scalar_one()
        assert run["status"] == "completed" and run["rows_written"] == ROWS
        assert tuple(per_batch) == (ROWS // BATCH, ROWS, ROWS), per_batch
        assert parts == 0
        assert not problems, "\n".join(problems)
    finally:
        if lock is not None:
            lock.rollback()
            lock.close()
        if lock_engine is not None:
            lock_engine.dispose()
        for p in [*workers, *([third] if third else [])]:
            if p.alive:
                p.kill()
        engine.dispose()
