"""The reliability suite's helpers: the fetcher and the worker as real `python -m molstream`
processes, waits bounded in time, fast reads of Kafka topics, and database comparisons that
ignore only what a clean run would itself change (timestamps, the source's port, durations)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import waits
from kafka import KafkaConsumer
from molstream.config import Settings
from sqlalchemy import Engine, text

TABLES = ("phase", "activity_type", "unit", "relation", "organism", "molecule", "target",
          "activity")
TIMESTAMPS = ("created_on", "last_modified_on")


# -- processes ----------------------------------------------------------------------------------


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a fetcher or worker process: `settings` as MOLSTREAM_* variables and
    nothing inherited that starts with MOLSTREAM_ (CI may set some)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOLSTREAM_")}
    env.update({
        "PYTHONUNBUFFERED": "1",
        "MOLSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "MOLSTREAM_TOPIC_PREFIX": settings.topics.prefix,
        "MOLSTREAM_DATABASE_URL": settings.database_url,
        "MOLSTREAM_REDIS_URL": settings.redis_url,
        "MOLSTREAM_REPORTS_DIR": str(settings.reports_dir),
        "MOLSTREAM_WORK_DIR": str(settings.work_dir),
        "MOLSTREAM_WORKER_GROUP": settings.worker_group,
        "MOLSTREAM_WORKER_INSTANCE_ID": settings.worker_instance_id,
        "MOLSTREAM_BATCH_SIZE": str(settings.batch_size),
        "MOLSTREAM_MODE": settings.mode.value,
        "MOLSTREAM_RETRIES": str(settings.retries),
        # The test servers listen on 127.0.0.1 (refused by default) and serve plain ftp://.
        "MOLSTREAM_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
        "MOLSTREAM_ALLOW_INSECURE_CREDENTIALS": "true",
    })
    env.update(extra)
    return env


class Proc:
    """A `python -m molstream ...` child process; its output goes to files (no pipe to fill)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        n = len(list(log_dir.glob(f"{name}-*.err")))
        self.out_path = log_dir / f"{name}-{n}.out"
        self.err_path = log_dir / f"{name}-{n}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.process = subprocess.Popen([sys.executable, "-m", "molstream", *args],
                                            stdout=out, stderr=err, env=env,
                                            start_new_session=True)

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout_s: float) -> int:
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not finish within {timeout_s:.0f}s; stderr:\n"
                                 f"{self.stderr[-3000:]}") from None

    def expect_success(self, timeout_s: float) -> None:
        rc = self.wait(timeout_s)
        assert rc == 0, f"{self.name} exited with {rc}; stderr:\n{self.stderr[-3000:]}"

    def kill(self, sig: int = signal.SIGKILL) -> int:
        if self.alive:
            os.kill(self.process.pid, sig)
        return self.process.wait(60)


def fetch_args(url: str, ingest_id: str, *extra: str) -> list[str]:
    return ["fetch", "--url", url, "--ingest-id", ingest_id, "--no-progress", *extra]


def worker_args(*ingest_ids: str, idle_timeout_s: float = 120) -> list[str]:
    """A worker that exits once these ingests have completed (or after an idle spell)."""
    until = [a for i in ingest_ids for a in ("--until-complete", i)]
    return ["worker", *until, "--idle-timeout", str(idle_timeout_s), "--no-progress"]


wait_for = waits.wait_for  # one wait, shared with the integration suite (its waits.py)


# -- observing the pipeline ---------------------------------------------------------------------


def sqlite_path(database_url: str) -> Path:
    assert database_url.startswith("sqlite:///")
    return Path(database_url.removeprefix("sqlite:///"))


def applied_batches(database_url: str) -> int:
    """Batches the worker has committed so far (0 before the schema exists)."""
    path = sqlite_path(database_url)
    if not path.exists():
        return 0
    conn = sqlite3.connect(path, timeout=10)
    try:
        return conn.execute("SELECT count(*) FROM applied_batch").fetchone()[0]
    except sqlite3.OperationalError:  # no such table yet
        return 0
    finally:
        conn.close()


class TopicWatch:
    """End offsets of one topic, and its whole content, without waiting for a quiet spell."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                       request_timeout_ms=10_000)

    def end(self) -> int:
        """How many messages the topic holds now (0 if it does not exist yet)."""
        return sum(waits.end_offsets(self._consumer, self.topic).values())

    def messages(self, timeout_s: float = waits.READ_TIMEOUT_S):
        """Every message up to the end offsets the topic has now."""
        return waits.read_to_end(self._consumer, self.topic, timeout_s=timeout_s)

    def json(self) -> list[dict]:
        return [json.loads(m.value) for m in self.messages()]

    def close(self) -> None:
        self._consumer.close()


# -- what the database holds --------------------------------------------------------------------


def ingest_state(engine: Engine, ingest: str) -> tuple[int, str | None, bool]:
    """(batches recorded, the ingest's status, announced) as the database has them now."""
    with engine.connect() as conn:
        try:
            applied = conn.execute(text(
                "SELECT count(*) FROM applied_batch WHERE ingest_id = :i"), {"i": ingest}
            ).scalar_one()
            run = conn.execute(text("SELECT status, announced FROM ingest_run WHERE id = :i"),
                               {"i": ingest}).first()
        except Exception:  # the schema is not there yet
            conn.rollback()
            return 0, None, False
    return applied, run and run.status, bool(run and run.announced)


def content(engine: Engine) -> dict[str, list[tuple]]:
    """Every row of the eight tables, every column but the two timestamps, ordered by id."""
    out = {}
    with engine.connect() as conn:
        for table in TABLES:
            result = conn.execute(text(f"SELECT * FROM {table} ORDER BY id"))  # noqa: S608
            keep = [i for i, c in enumerate(result.keys()) if c not in TIMESTAMPS]
            out[table] = [tuple(row[i] for i in keep) for row in result]
    return out


def touched(engine: Engine) -> dict[str, int]:
    """Rows per table whose last_modified_on moved after their insert (an update happened)."""
    with engine.connect() as conn:
        return {t: conn.execute(text(
            f"SELECT count(*) FROM {t} WHERE last_modified_on <> created_on")).scalar_one()  # noqa: S608
            for t in TABLES}


def bookkeeping(engine: Engine) -> dict[str, object]:
    """The pipeline's own records, without times, durations and the source URL (its port)."""
    with engine.connect() as conn:
        runs = [dict(r) for r in conn.execute(text(
            "SELECT id, mode, status, batches_expected, batches_applied, rows_total, "
            "rows_published, rows_rejected, rows_applied, rows_written, announced, report "
            "FROM ingest_run ORDER BY id")).mappings()]
        batches = [tuple(r) for r in conn.execute(text(
            "SELECT ingest_id, seq, rows, written FROM applied_batch ORDER BY ingest_id, seq"))]
    for run in runs:
        report = run.pop("report")
        report = json.loads(report) if isinstance(report, str) else report
        # (the source's URL differs between the runs' servers: their ports)
        run["report"] = report and {k: v for k, v in report.items()
                                    if k not in ("duration_s", "source", "source_identity")}
    return {"ingest_run": runs, "applied_batch": batches}


def differences(actual: dict[str, list], expected: dict[str, list], *, show: int = 3) -> list[str]:
    """Short, readable differences between two {table: rows} (pytest's own diff of 200,000
    rows would take minutes)."""
    out = []
    for table in expected:
        a, e = actual.get(table), expected[table]
        if a == e:
            continue
        if isinstance(e, dict) and isinstance(a, dict):
            a, e = list(a.items()), list(e.items())
        if not isinstance(e, list | set) or not isinstance(a, list | set):
            out.append(f"{table}: {a!r} != {e!r}")
            continue
        sa, se = set(map(repr, a)), set(map(repr, e))
        out.append(f"{table}: {len(a)} rows, expected {len(e)}; unexpected "
                   f"{sorted(sa - se)[:show]}; missing {sorted(se - sa)[:show]}")
    return out
