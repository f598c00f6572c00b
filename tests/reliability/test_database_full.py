"""A database whose disk fills mid-ingest, for real: SQLite on a small tmpfs, PostgreSQL with its
database in a tablespace on one. The worker keeps its place (nothing committed to Kafka for the
batch that did not fit), says `database_full` naming the volume and what the rest needs (the
IngestRequest: Failed, reason DatabaseFull), and once the volume is grown (remount) goes on to
a database equal to what the file implies, the run Succeeded."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from expected import actual_tables, expected_tables
from harness import applied_batches, fetch_args, service_env, wait_for, worker_args
from molstream_dev._process import new_run_dir
from molstream_operator import status as st
from molstream_operator.ingest_events import IngestEvent
from sqlalchemy import create_engine

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

REAL = Path(__file__).resolve().parents[1] / "data" / "chembl-real" / "activities.csv.gz"


def _mount(where: Path, size: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
                   check=True)


@pytest.fixture
def small_volume() -> Iterator[Path]:
    """A 3 MiB tmpfs, where PostgreSQL's user can reach it too (pytest's tmp_path is 0700)."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is a small tmpfs here, and mounting one needs root")
    run = new_run_dir("small-volume")
    where = run / "volume"
    where.mkdir()
    os.chmod(run, 0o755)
    _mount(where, "3m")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)
        shutil.rmtree(run, ignore_errors=True)


def _statuses(events: list[dict], ingest_id: str, started: float) -> list[dict]:
    """The IngestRequest's status after each event of the ingest, as the operator makes it."""
    status = st.new_run({"observedGeneration": 1}, run=1, ingest_id=ingest_id, job_name="j",
                        start_time=st.format_time(started), now=st.format_time(started)).status
    seen = []
    for e in events:
        if e.get("ingest_id") != ingest_id:
            continue
        change = st.apply_event(status, IngestEvent(type=e["type"], ingest_id=ingest_id,
                                                    ts=e["ts"], data=e), now="2026-01-01T00:00:00Z")
        if change is not None:
            status = change.status
            seen.append(status)
    return seen


def _failed(status: dict) -> dict:
    (cond,) = [c for c in status["conditions"] if c["type"] == "Failed"]
    return cond


def _fill_then_grow(make_pipeline, procs, topic_watch, database_url: str, grow, *,
                    volume_words: list[str]) -> None:
    """Publish the real rows, let a worker fill the database's volume, check what it says and
    that it waits, grow the volume, and check the database it then completes."""
    p = make_pipeline(database_url=database_url, redis=False, batch_size=2000)
    ingest_id = f"full-{uuid.uuid4().hex[:8]}"
    env = service_env(p.settings)
    started = time.time() - 1
    procs("fetcher", fetch_args(f"file://{REAL}", ingest_id), env).expect_success(300)
    events = topic_watch(p.settings.topics.events)
    worker = procs("worker", worker_args(ingest_id, idle_timeout_s=600), env)

    def full_events() -> list[dict]:
        return [e for e in events.json()
                if e["type"] == "database_full" and e["ingest_id"] == ingest_id]

    (full, *_) = wait_for(full_events, timeout_s=300, what="a database_full event",
                          watch=[worker])
    assert "\n" not in full["reason"]
    for words in volume_words:
        assert words in full["reason"], full["reason"]
    assert full["needed_bytes"] > 0
    statuses = _statuses(events.json(), ingest_id, started)
    assert statuses[-1]["phase"] == "Failed"
    assert _failed(statuses[-1])["reason"] == "DatabaseFull"
    assert statuses[-1]["message"] == full["reason"]
    assert worker.alive, worker.stderr[-3000:]  # waiting, not crash-looping
    applied_while_full = applied_batches(database_url) if database_url.startswith("sqlite") \
        else None

    grow()
    worker.expect_success(300)
    assert "database full" in worker.stderr and "applying goes on" in worker.stderr
    statuses = _statuses(events.json(), ingest_id, started)
    phases = [s["phase"] for s in statuses]
    assert phases[-1] == "Succeeded", phases
    after_full = phases[phases.index("Failed"):]
    assert "Ingesting" in after_full or after_full[-1] == "Succeeded"
    assert _failed(statuses[-1])["status"] == "False"

    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        assert actual_tables(engine) == expected_tables(REAL)  # no accepted row lost
    finally:
        engine.dispose()
    if applied_while_full is not None:
        assert applied_batches(database_url) > applied_while_full


def test_a_full_sqlite_volume_waits_and_completes_once_grown(
        small_volume: Path, make_pipeline, procs, topic_watch) -> None:
    database_url = f"sqlite:///{small_volume / 'molstream.db'}"
    _fill_then_grow(
        make_pipeline, procs, topic_watch, database_url,
        lambda: subprocess.run(["mount", "-o", "remount,size=64m", str(small_volume)],
                               check=True),
        volume_words=[str(small_volume), "worker.persistence.size", "rows still to apply"])


@pytest.mark.postgres
def test_a_full_postgresql_tablespace_waits_and_completes_once_grown(
        small_volume: Path, postgres_local, make_pipeline, procs, topic_watch) -> None:
    import psycopg

    if postgres_local.run_as:  # the server's user must own a tablespace's directory
        os.chown(small_volume, *_ids(postgres_local.run_as))
    name = f"full_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_local.admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLESPACE {name} LOCATION '{small_volume}'")
        conn.execute(f"CREATE DATABASE {name} TABLESPACE {name}")
    try:
        _fill_then_grow(
            make_pipeline, procs, topic_watch, postgres_local.url_for(name),
            lambda: subprocess.run(["mount", "-o", "remount,size=96m", str(small_volume)],
                                   check=True),
            volume_words=["could not extend file", "53100", "rows still to apply"])
    finally:
        with psycopg.connect(postgres_local.admin_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"DROP TABLESPACE IF EXISTS {name}")


def _ids(user: str) -> tuple[int, int]:
    import pwd

    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid
