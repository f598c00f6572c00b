"""Workers joining busy workers (PostgreSQL, dynamic membership): 2 workers on 4 partitions
apply a stream of batches, each slowed by a trigger, while three more join mid-ingest. A
rebalance begun in a poll made during the work used to leave the member REBALANCING when its
work ended; kafka-python refuses the commit then (RebalanceInProgressError), which the worker
took for Kafka being unreachable and retried without polling, so the join never ended, the
member was dropped, and it exited 2 after MOLSTREAM_KAFKA_OUTAGE_S. Afterwards: every worker
ends well, none spent its outage budget on a commit, one `completed` event, the tables equal
what the CSV implies."""

from __future__ import annotations

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

ROWS = 100_000
BATCH = 1_000
PARTITIONS = 4
INGEST = "join-while-busy-1"
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




def test_workers_joining_busy_workers_make_no_commit_fail(ftp, source, kafka_bootstrap,
                                                         redis_url, db_url, tmp_path):
    """A third worker joins while two apply a stream of batches (dynamic membership: a
    rebalance). No worker should end with an error or spend its outage budget committing."""
    prefix = f"jb{uuid.uuid4().hex[:10]}"
    root = tmp_path / "run"
    root.mkdir()
    s = Settings(kafka_bootstrap=kafka_bootstrap, topics=Topics(prefix=prefix),
                 database_url=db_url, redis_url=redis_url, reports_dir=root / "reports",
                 work_dir=root / "work", worker_group=f"{prefix}-worker", batch_size=BATCH,
                 retries=5, rows_partitions=PARTITIONS)
    env = service_env(s, MOLSTREAM_SOURCE_USERNAME=ftp.user,
                      MOLSTREAM_SOURCE_PASSWORD=ftp.password,
                      MOLSTREAM_ROWS_PARTITIONS=str(PARTITIONS),
                      MOLSTREAM_KAFKA_OUTAGE_S="40", MOLSTREAM_HEALTH_PORT="0")
    Proc("fetcher", fetch_args(ftp.url(FILE, with_credentials=False), INGEST), env,
         root / "logs").expect_success(300)
    engine = make_engine(db_url)
    args = ["-v", "worker", "--until-complete", INGEST, "--idle-timeout", "300", "--no-progress"]
    workers = [Proc(f"worker{i}", args, env, root / "logs") for i in range(2)]
    try:
        wait_for(lambda: ingest_state(engine, INGEST)[0] >= 1, timeout_s=120, what="the schema",
                 watch=workers, poll_s=0.01)
        with engine.begin() as conn:  # every batch's record takes 0.2 s: busy workers
            conn.execute(text("CREATE FUNCTION busy_slow() RETURNS trigger LANGUAGE plpgsql "
                              "AS $$ BEGIN PERFORM pg_sleep(0.2); RETURN NEW; END $$"))
            conn.execute(text("CREATE TRIGGER busy_slow BEFORE INSERT ON applied_batch "
                              "FOR EACH ROW EXECUTE FUNCTION busy_slow()"))
        for n, at in enumerate((8, 30, 55)):
            wait_for(lambda at=at: (ingest_state(engine, INGEST)[0] >= at
                                    or ingest_state(engine, INGEST)[2]), timeout_s=120,
                     what=f"{at} batches", watch=workers, poll_s=0.01)
            workers.append(Proc(f"joiner{n}", args, env, root / "logs"))
        wait_for(lambda: ingest_state(engine, INGEST)[2], timeout_s=300,
                 what="the ingest announced", watch=[])
        codes = {p.name: p.wait(120) for p in workers}
        for p in workers:
            lines = [ln for ln in p.stderr.splitlines() if "a rebalance" in ln
                     or "commit" in ln or "ERROR" in ln or "Error" in ln]
            print(p.name, codes[p.name], "\n  " + "\n  ".join(lines[:20]))
        bad = {p.name: [ln for ln in p.stderr.splitlines() if "commit offsets" in ln][:3]
               for p in workers if codes[p.name] != 0
               or "while trying to commit offsets" in p.stderr}
        assert not bad, bad
        watch = TopicWatch(s.kafka_bootstrap, s.topics.events)
        try:
            completed = [e for e in watch.json()
                         if e["type"] == "completed" and e["ingest_id"] == INGEST]
        finally:
            watch.close()
        assert len(completed) == 1 and completed[0]["rows_written"] == ROWS, completed
        problems = differences(actual_tables(engine), expected_tables(source / FILE))
        assert not problems, "\n".join(problems)
    finally:
        for p in workers:
            if p.alive:
                p.kill()
        engine.dispose()
