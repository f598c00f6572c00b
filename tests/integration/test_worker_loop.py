"""The worker keeps its place in the consumer group while an apply waits for a lock another
connection holds for longer than max.poll.interval.ms and session.timeout.ms (configured low
here): the group's generation and the member stay the same, on the consumer's side and on
the broker's, and every row of the real ChEMBL file lands exactly once.

Before molstream.polling, the loop applied on the thread that polls: kafka-python's heartbeat
thread saw the poll interval run out, the member left the group, and it joined again under a
new generation once the lock was released.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import waits
from kafka import KafkaAdminClient
from molstream import metrics, polling
from molstream.db import make_engine
from molstream.worker import Worker
from sqlalchemy import text
from sqlalchemy.engine import make_url

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

REAL = Path(__file__).resolve().parents[1] / "data" / "chembl-real" / "activities.csv.gz"
ROWS = 44_077  # tests/data/chembl-real/README.md
MAX_POLL_INTERVAL_MS = 2_000
SESSION_TIMEOUT_MS = 6_000  # the broker's group.min.session.timeout.ms


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite'}"
    return request.getfixturevalue("postgres_url")


class Lock:
    """A lock on the activity table, held by a connection of the test's own: SQLite's write
    lock, or PostgreSQL's ACCESS EXCLUSIVE (which even readers of the table wait for)."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        if self.url.get_backend_name() == "sqlite":
            self._conn = sqlite3.connect(self.url.database, isolation_level=None,
                                         check_same_thread=False)  # released by the holder
            self._conn.execute("BEGIN IMMEDIATE")
        else:
            self._engine = make_engine(url)
            self._conn = self._engine.connect()
            self._conn.begin()
            self._conn.execute(text("LOCK TABLE activity IN ACCESS EXCLUSIVE MODE"))

    def release(self) -> None:
        if self._conn is None:
            return
        if isinstance(self._conn, sqlite3.Connection):
            self._conn.execute("ROLLBACK")
            self._conn.close()
        else:
            self._conn.rollback()
            self._conn.close()
            self._engine.dispose()
        self._conn = None


def _group_members(bootstrap: str, group: str) -> tuple[str, set[str]]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-describe")
    try:
        described = admin.describe_groups([group])[group]
    finally:
        admin.close()
    return described["group_state"], {m["member_id"] for m in described["members"]}


def test_a_long_apply_keeps_the_group_and_every_row_lands_once(make_pipeline, database_url,
                                                                 monkeypatch):
    monkeypatch.setattr(polling, "MAX_POLL_INTERVAL_MS", MAX_POLL_INTERVAL_MS)
    monkeypatch.setattr(polling, "SESSION_TIMEOUT_MS", SESSION_TIMEOUT_MS)
    monkeypatch.setattr(polling, "HEARTBEAT_INTERVAL_MS", 1_000)
    p = make_pipeline(database_url=database_url, batch_size=2_000,
                      db_busy_timeout_s=600)  # SQLite: one statement waits out the lock
    p.fetch(REAL.as_uri(), "long-apply")
    redelivered = metrics.BATCHES_REDELIVERED._value.get()  # noqa: SLF001 - a counter's value
    worker = Worker(p.settings)  # schema checked before the lock is taken
    lock = Lock(database_url)
    seen: dict[str, object] = {}

    def hold() -> None:
        """Hold the lock until the blocked apply has outlived the poll interval and the
        session timeout together, watching the member all along; then let go."""
        try:
            waits.wait_for(lambda: worker.health.joined, timeout_s=waits.EVENT_TIMEOUT_S,
                           what="the worker to join its group")
            first = worker.consumer.group_metadata()
            seen["first"] = (first.generation_id, first.member_id)
            generations = seen.setdefault("generations", set())
            outlived = (MAX_POLL_INTERVAL_MS + SESSION_TIMEOUT_MS) / 1000 * 1.5

            def sample() -> None:
                meta = worker.consumer.group_metadata()
                generations.add((meta.generation_id, meta.member_id))

            def apply_outlived_both() -> bool:
                sample()
                busy = worker.health.longest_operation()
                return busy is not None and busy[0].startswith("apply") and busy[1] > outlived

            waits.wait_for(apply_outlived_both, timeout_s=waits.EVENT_TIMEOUT_S,
                           what="an apply blocked by the lock for longer than the poll "
                                "interval and the session timeout", poll_s=0.1)
            seen["broker"] = _group_members(p.settings.kafka_bootstrap,
                                            p.settings.worker_group)
        except BaseException as e:  # noqa: BLE001 - reported by the test's thread
            seen["error"] = e
        finally:
            lock.release()

    holder = threading.Thread(target=hold, name="lock-holder")
    holder.start()
    try:
        worker.run(until_complete=["long-apply"], idle_timeout_s=waits.EVENT_TIMEOUT_S)
    finally:
        holder.join(timeout=waits.EVENT_TIMEOUT_S)
    assert "error" not in seen, seen.get("error")
    assert seen["generations"] == {seen["first"]}, (
        f"the member changed while the apply was blocked: {seen['generations']}")
    state, members = seen["broker"]
    assert state == "Stable" and members == {seen["first"][1]}
    # Every row exactly once: no batch came back, the database holds each activity once.
    assert metrics.BATCHES_REDELIVERED._value.get() == redelivered  # noqa: SLF001
    report = worker.completed[-1]
    assert report["rows_written"] == report["rows_published"] == ROWS
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*), count(DISTINCT id) FROM activity"
                                     )).one() == (ROWS, ROWS)
    finally:
        engine.dispose()
