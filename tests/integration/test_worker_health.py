"""The worker's /healthz and /readyz (molstream.health), asked over HTTP of a `molstream worker`
process: not ready while its database cannot be reached (SQLite's write lock held by another
connection while the schema is checked), ready once it has joined its group; alive, then not
alive (503, one line naming the operation) while an apply is held by a lock for longer than
MOLSTREAM_LIVENESS_TIMEOUT_S, alive again once the lock is gone, and the ingest completes."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import waits
from molstream.db import create_schema, make_engine

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

REAL = Path(__file__).resolve().parents[1] / "data" / "chembl-real" / "activities.csv.gz"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode().strip()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode().strip()
    except OSError:
        return 0, ""  # not serving yet


def _running(worker: subprocess.Popen) -> bool:
    if worker.poll() is not None:
        raise AssertionError(f"the worker exited with {worker.returncode}: "
                             f"{worker.communicate()[1][-3000:]}")
    return True


def _write_lock(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_readiness_and_liveness_follow_the_database(make_pipeline, tmp_path):
    db = tmp_path / "db.sqlite"
    p = make_pipeline(database_url=f"sqlite:///{db}", batch_size=2_000)
    s = p.settings
    port = _free_port()
    env = {"MOLSTREAM_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
           "MOLSTREAM_TOPIC_PREFIX": s.topics.prefix,
           "MOLSTREAM_DATABASE_URL": s.database_url, "MOLSTREAM_REDIS_URL": s.redis_url,
           "MOLSTREAM_REPORTS_DIR": str(s.reports_dir), "MOLSTREAM_WORKER_GROUP": s.worker_group,
           "MOLSTREAM_HEALTH_PORT": str(port), "MOLSTREAM_HEALTH_HOST": "127.0.0.1",
           "MOLSTREAM_LIVENESS_TIMEOUT_S": "2",
           "MOLSTREAM_DB_BUSY_TIMEOUT_S": "600",  # one statement waits out each lock
           "PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"}
    engine = make_engine(s.database_url)  # WAL, as the worker leaves it: it then only waits
    create_schema(engine)
    engine.dispose()
    lock = _write_lock(db)
    worker = subprocess.Popen(
        [sys.executable, "-m", "molstream", "worker", "--until-complete", "health",
         "--idle-timeout", str(waits.EVENT_TIMEOUT_S), "--no-progress"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Held by the lock while it checks the schema: alive, not ready.
        status, reason = waits.wait_for(lambda: _running(worker) and _get(port, "/readyz")[0]
                                        and _get(port, "/readyz"),
                                        timeout_s=waits.EVENT_TIMEOUT_S, what="/readyz answering")
        assert (status, reason) == (503, "the database has not been reached yet")
        assert _get(port, "/healthz") == (200, "ok")
        lock.execute("ROLLBACK")
        waits.wait_for(lambda: _get(port, "/readyz") == (200, "ok"),
                       timeout_s=waits.EVENT_TIMEOUT_S, what="the worker ready")

        # Rows published while the lock is held again: the apply waits, and liveness fails.
        lock.execute("BEGIN IMMEDIATE")
        p.fetch(REAL.as_uri(), "health")
        status, reason = waits.wait_for(
            lambda: (r := _get(port, "/healthz"))[0] == 503 and r,
            timeout_s=waits.EVENT_TIMEOUT_S, what="/healthz failing while the apply is held")
        assert reason.startswith("one database operation (apply of ")
        assert reason.endswith("(MOLSTREAM_LIVENESS_TIMEOUT_S=2)") and "\n" not in reason
        assert _get(port, "/readyz") == (200, "ok")  # still a member, still ready
        lock.execute("ROLLBACK")
        waits.wait_for(lambda: _get(port, "/healthz") == (200, "ok"),
                       timeout_s=waits.EVENT_TIMEOUT_S, what="/healthz passing again")
        assert _get(port, "/nothing")[0] == 404
        out, err = worker.communicate(timeout=waits.EVENT_TIMEOUT_S)
        assert worker.returncode == 0, err[-3000:]
        assert "health" in out  # the report of the completed ingest
    finally:
        lock.close()
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
