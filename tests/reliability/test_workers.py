"""Several workers on PostgreSQL, killed at random moments: every ingest completes exactly once.

The rows topic has 4 partitions and 3 workers share it, so the end marker and the last batch
land on different workers. A seeded random schedule kills (SIGKILL) one worker after every few
batches the database records, and once more the moment the last batch is in (before or while
the ingest is completed and announced); each killed worker is started again at once. The run
ends when the ingest is announced. Then: exactly one `completed` event on the events topic,
and the database equals a clean run's (by value: with several workers the dimension tables'
ids are handed out in another order), bookkeeping and report included.
"""

from __future__ import annotations

import csv
import random
import signal
import uuid
from pathlib import Path

import pytest
from expected import actual_tables, expected_tables
from harness import (
    Proc,
    TopicWatch,
    differences,
    fetch_args,
    ingest_state,
    service_env,
    touched,
    wait_for,
)
from molstream.config import Settings, Topics
from molstream.db import make_engine
from molstream.sample import generate
from molstream_dev.ftp import FtpServer
from sqlalchemy import Engine, text

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.redis, pytest.mark.ftp,
              pytest.mark.postgres, pytest.mark.timeout(600)]

ROWS = 60_000
BATCH = 1_000
BATCHES = ROWS // BATCH
PARTITIONS = 4
WORKERS = 3
INGEST = "many-workers-1"
FILE = "activities.csv"


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


def _settings(root: Path, kafka_bootstrap: str, redis_url: str, database_url: str) -> Settings:
    prefix = f"mw{uuid.uuid4().hex[:10]}"
    root.mkdir(parents=True, exist_ok=True)
    return Settings(kafka_bootstrap=kafka_bootstrap, topics=Topics(prefix=prefix),
                    database_url=database_url, redis_url=redis_url,
                    reports_dir=root / "reports", work_dir=root / "work",
                    worker_group=f"{prefix}-worker", batch_size=BATCH, retries=5,
                    rows_partitions=PARTITIONS)


def _env(s: Settings, ftp: FtpServer, **extra: str) -> dict[str, str]:
    return service_env(s, MOLSTREAM_SOURCE_USERNAME=ftp.user,
                       MOLSTREAM_SOURCE_PASSWORD=ftp.password,
                       MOLSTREAM_ROWS_PARTITIONS=str(PARTITIONS), **extra)


def _worker(s: Settings, env: dict[str, str], root: Path, slot: int,
            ingest: str = INGEST) -> Proc:
    # Static membership per slot: a restarted worker takes its partitions back at once.
    return Proc(f"worker{slot}", ["worker", "--until-complete", ingest, "--idle-timeout", "300",
                                  "--no-progress"],
                {**env, "MOLSTREAM_WORKER_INSTANCE_ID": f"{s.worker_group}-{slot}"},
                root / "logs")



def _bookkeeping(engine: Engine) -> dict:
    with engine.connect() as conn:
        run = dict(conn.execute(text(
            "SELECT status, batches_expected, batches_applied, rows_total, rows_published, "
            "rows_rejected, rows_applied, rows_written, announced, report FROM ingest_run "
            "WHERE id = :i"), {"i": INGEST}).mappings().one())
        # Which batch first wrote a molecule, a target or a dimension value depends on the
        # order the workers applied them in: per batch, only the activities are fixed.
        batches = [(seq, rows, written["activity"], rejected) for seq, rows, written, rejected
                   in conn.execute(text(
                       "SELECT seq, rows, written, rejected FROM applied_batch "
                       "WHERE ingest_id = :i ORDER BY seq"), {"i": INGEST})]
    report = run.pop("report")
    run["report"] = {k: v for k, v in report.items()
                     if k not in ("duration_s", "source", "source_identity")}
    return {"ingest_run": [run], "applied_batch": batches}


def _completed(watch: TopicWatch, ingest: str = INGEST) -> list[dict]:
    return [e for e in watch.json() if e["type"] == "completed" and e["ingest_id"] == ingest]


def _run(tmp_path: Path, name: str, ftp: FtpServer, kafka_bootstrap: str, redis_url: str,
         database_url: str, *, kills: list[int] | None, ingest: str = INGEST, file: str = FILE,
         **env_extra: str) -> tuple[Settings, Engine, list[Proc]]:
    """Fetch the file onto topics of this run's own, then apply it with WORKERS workers; with
    `kills`, kill a worker each time the recorded batches reach the next figure of the list."""
    root = tmp_path / name
    s = _settings(root, kafka_bootstrap, redis_url, database_url)
    env = _env(s, ftp, **env_extra)
    Proc("fetcher", fetch_args(ftp.url(file, with_credentials=False), ingest), env,
         root / "logs").expect_success(300)
    engine = make_engine(database_url)
    workers = [_worker(s, env, root, i, ingest) for i in range(WORKERS)]
    started = list(workers)
    rng = random.Random(7)
    for at in kills or []:
        wait_for(lambda at=at: (ingest_state(engine, ingest)[0] >= at
                                or ingest_state(engine, ingest)[2]),
                 timeout_s=300, what=f"{at} batches recorded", watch=workers, poll_s=0.01)
        if ingest_state(engine, ingest)[2]:
            break  # announced already: nothing left to interrupt
        slot = rng.randrange(WORKERS)
        assert workers[slot].kill() == -signal.SIGKILL
        workers[slot] = _worker(s, env, root, slot, ingest)
        started.append(workers[slot])
    wait_for(lambda: ingest_state(engine, ingest)[2], timeout_s=300, what="the ingest announced",
             watch=workers)
    for w in workers:
        w.expect_success(120)  # each sees the ingest finished and exits
    return s, engine, started


@pytest.fixture
def chaos_url(db_url) -> str:
    """A second fresh database, beside `postgres_url`'s."""
    return db_url


def test_many_workers_killed_at_random_complete_the_ingest_once(
        ftp, source, kafka_bootstrap, redis_url, postgres_url, chaos_url, tmp_path):
    _, clean, _ = _run(tmp_path, "clean", ftp, kafka_bootstrap, redis_url, postgres_url,
                       kills=None)
    rng = random.Random(3)
    kills = sorted(rng.sample(range(2, BATCHES - 1), 5)) + [BATCHES]
    s, engine, started = _run(tmp_path, "chaos", ftp, kafka_bootstrap, redis_url, chaos_url,
                              kills=kills)
    try:
        assert len(started) > WORKERS, "no worker was killed"
        watch = TopicWatch(s.kafka_bootstrap, s.topics.events)
        try:
            completed = _completed(watch)
        finally:
            watch.close()
        assert len(completed) == 1, f"{len(completed)} completed events: {completed}"
        assert completed[0]["rows_written"] == ROWS
        expected = expected_tables(source / FILE)
        problems = differences(actual_tables(engine), expected)
        problems += differences(actual_tables(engine), actual_tables(clean))
        problems += differences(_bookkeeping(engine), _bookkeeping(clean))
        problems += differences(touched(engine), touched(clean))
        assert not problems, "the database differs from the clean run's:\n" + "\n".join(problems)
    finally:
        engine.dispose()
        clean.dispose()


def test_a_mirror_across_workers_killed_at_random_retires_exactly_what_its_release_dropped(
        ftp, source, kafka_bootstrap, redis_url, postgres_url, tmp_path):
    """Release 1 is the generated file; release 2 drops every 20th activity and adds 600. Each
    is mirrored by 3 workers on 4 partitions; release 2's workers are killed at random. The
    dropped activities, and only they, are retired, once; the new ones are added."""
    with open(source / FILE, newline="") as f:
        header, *rows = csv.reader(f)
    dropped = {int(r[0]) for r in rows[::20]}
    top = max(int(r[0]) for r in rows)
    new = [[str(top + 1 + i), *r[1:]] for i, r in enumerate(rows[:600])]
    with open(source / "release-2.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *[r for r in rows if int(r[0]) not in dropped], *new])
    mirror = {"MOLSTREAM_MODE": "mirror", "MOLSTREAM_MIRROR_KEY": "releases"}
    _, engine, _ = _run(tmp_path, "r1", ftp, kafka_bootstrap, redis_url, postgres_url,
                        kills=None, ingest="mirror-1", **mirror)
    engine.dispose()
    batches = (len(rows) - len(dropped) + len(new)) // BATCH
    kills = sorted(random.Random(5).sample(range(2, batches - 1), 4)) + [batches]
    s, engine, started = _run(tmp_path, "r2", ftp, kafka_bootstrap, redis_url, postgres_url,
                              kills=kills, ingest="mirror-2", file="release-2.csv", **mirror)
    try:
        assert len(started) > WORKERS, "no worker was killed"
        watch = TopicWatch(s.kafka_bootstrap, s.topics.events)
        try:
            (completed,) = _completed(watch, "mirror-2")
        finally:
            watch.close()
        assert {k: completed["mirror"][k] for k in ("added", "changed", "retired",
                                                    "restored")} == {
            "added": len(new), "changed": 0, "retired": len(dropped), "restored": 0}
        with engine.connect() as conn:
            inactive = set(conn.execute(text(
                "SELECT a.id FROM activity a JOIN ingest_run r ON r.number = a.retired_by "
                "WHERE NOT a.active AND r.id = 'mirror-2'")).scalars())
            active = conn.execute(text("SELECT count(*) FROM activity WHERE active")).scalar_one()
        assert inactive == dropped and active == len(rows) - len(dropped) + len(new)
    finally:
        engine.dispose()
