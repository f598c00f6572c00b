"""End to end: a generated CSV on the local FTP server → fetcher process → Kafka → worker
process(es) → SQLite or PostgreSQL, as `make local` runs it, measured.

The worker and the fetcher are the real `python -m molstream` commands, started together (as
in a cluster, the worker is already waiting when the fetcher begins). Wall time runs from
their start to the worker's exit after it has applied the last batch and written the report.
Peak RSS and CPU time of each come from `os.wait4`. Stage times: download, read and
validate+publish from the fetcher's JSON result; apply from the worker's first transaction
(`ingest_run.started_on`) to its `completed` event (the last batch committed, the indexes
rebuilt, the report written). The events topic also gives a timeline of the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaConsumer
from molstream.cli import MEMBER_DROPPED_WORDS
from molstream.db import IngestRun, normalize_url
from sqlalchemy import create_engine, make_url, select


class Failed(RuntimeError):
    pass


def _wait(process: subprocess.Popen, timeout_s: float) -> tuple[int, float, float]:
    """Exit status, peak RSS (MiB) and CPU seconds of one child; kills it past the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            process.kill()
        time.sleep(0.02)


def _tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run(sample: Path, rows: int, *, kafka_bootstrap: str, redis_url: str, ftp, work: Path,
        batch_size: int | None = None, timeout_s: float | None = None,
        database_url: str | None = None,
        workers: int = 1, partitions: int = 1, watch=None) -> dict:
    """One ingest of `sample` (served by `ftp`, a molstream_dev FtpServer); its figures.
    Into a fresh SQLite file, or into `database_url` (an empty PostgreSQL database) with
    `workers` workers on a rows topic of `partitions` partitions; `watch(app_names)`, a
    context manager, runs beside them (bench.pg's lock sampler)."""
    timeout_s = timeout_s or max(1800.0, rows / 5_000)  # 24M rows: 80 min
    tag = f"bench{uuid.uuid4().hex[:8]}"
    run_dir = work / tag
    run_dir.mkdir(parents=True)
    database_url = database_url or f"sqlite:///{run_dir / 'molstream.db'}"
    names = [f"{tag}-w{i}" for i in range(workers)]
    env = {
        **os.environ,
        "MOLSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "MOLSTREAM_TOPIC_PREFIX": tag,
        "MOLSTREAM_WORKER_GROUP": f"{tag}-worker",
        "MOLSTREAM_REDIS_URL": redis_url,
        "MOLSTREAM_DATABASE_URL": database_url,
        "MOLSTREAM_ROWS_PARTITIONS": str(partitions),
        "MOLSTREAM_REPORTS_DIR": str(run_dir / "reports"),
        "MOLSTREAM_WORK_DIR": str(run_dir / "work"),
        "MOLSTREAM_SOURCE_USERNAME": ftp.user,
        "MOLSTREAM_SOURCE_PASSWORD": ftp.password,
        # the bench's own FTP server on 127.0.0.1 (refused by default: not a public address)
        "MOLSTREAM_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
        "MOLSTREAM_ALLOW_INSECURE_CREDENTIALS": "true",
    }
    if batch_size:
        env["MOLSTREAM_BATCH_SIZE"] = str(batch_size)
    molstream = [sys.executable, "-m", "molstream"]
    ingest_id = tag
    logs = {name: open(run_dir / f"{name}.log", "wb") for name in ("worker", "fetcher")}
    fetcher_out = run_dir / "fetcher.json"
    watching = watch(names) if watch else contextlib.nullcontext({})
    try:
        with watching as waits:
            started = time.perf_counter()
            worker_procs = [subprocess.Popen(
                [*molstream, "worker", "--until-complete", ingest_id, "--no-progress",
                 "--idle-timeout", "300"],
                env={**env, "MOLSTREAM_DATABASE_URL": _named(database_url, name)},
                stdout=subprocess.DEVNULL, stderr=logs["worker"]) for name in names]
            with open(fetcher_out, "wb") as out:
                fetcher = subprocess.Popen(
                    [*molstream, "fetch", "--url", ftp.url(sample.name, with_credentials=False),
                     "--ingest-id", ingest_id, "--no-progress"],
                    env=env, stdout=out, stderr=logs["fetcher"])
                fetch_status, fetch_rss, fetch_cpu = _wait(fetcher, timeout_s)
            fetcher_done = time.perf_counter()
            if fetch_status != 0:
                for worker in worker_procs:
                    worker.kill()
                    _wait(worker, 30)
                raise Failed(f"the fetcher failed (exit {fetch_status}):\n"
                             + _tail(run_dir / "fetcher.log"))
            waited = [_wait(worker, timeout_s) for worker in worker_procs]
            elapsed = time.perf_counter() - started
    finally:
        for f in logs.values():
            f.close()
    if any(status != 0 for status, _, _ in waited):
        raise Failed(f"a worker failed ({[w[0] for w in waited]}):\n"
                     + _tail(run_dir / "worker.log"))
    work_rss = max(rss for _, rss, _ in waited)
    work_cpu = sum(cpu for _, _, cpu in waited)
    result = _last_json(fetcher_out)
    # kafka-python's asyncio loop, held up by the worker's own work (issue 20), and the
    # consumer group's rebalances (a new generation, logged by molstream.polling)
    worker_log = (run_dir / "worker.log").read_text(errors="replace")
    loop_warnings = worker_log.count("blocking the event loop")
    rebalances = worker_log.count("(a rebalance)")
    # ...and members dropped for being silent too long (kafka-python's words, which the worker
    # logs: molstream.cli); with several workers, members joining and leaving rebalance too
    member_timeouts = sum(worker_log.count(m) for m in MEMBER_DROPPED_WORDS)
    engine = create_engine(normalize_url(database_url))
    try:
        with engine.connect() as conn:
            ingest = conn.execute(select(IngestRun.__table__).where(
                IngestRun.__table__.c.id == ingest_id)).mappings().one_or_none()
    finally:
        engine.dispose()
    if ingest is None or ingest["status"] != "completed":
        raise Failed(f"ingest {ingest_id} did not complete:\n" + _tail(run_dir / "worker.log"))
    if ingest["rows_written"] != rows:
        raise Failed(f"{ingest['rows_written']} rows written, expected {rows}")
    events = _events(kafka_bootstrap, f"{tag}.events", ingest_id)
    spawned = time.time() - (time.perf_counter() - started)  # wall clock of the spawn
    timeline = {kind: round(ts - spawned, 2) for kind, ts in events.items()}
    apply_s = events["completed"] - _seconds(ingest["started_on"])
    stages = {**result["seconds"], "apply": apply_s}
    return {
        "rows": rows,
        "seconds": elapsed,
        "rows_per_s": rows / elapsed,
        "fetcher_seconds": fetcher_done - started,
        "stage_seconds": stages,
        "stage_rows_per_s": {k: rows / v if v > 0 else None for k, v in stages.items()},
        "fetcher_peak_rss_mb": fetch_rss,
        "worker_peak_rss_mb": work_rss,
        "fetcher_cpu_seconds": fetch_cpu,
        "worker_cpu_seconds": work_cpu,
        "workers": workers,
        "loop_warnings": loop_warnings,
        "rebalances": rebalances,
        "member_timeouts": member_timeouts,
        "lock_wait_s": dict(waits),  # per worker (application name), when watched
        "batches": result["batches"],
        "timeline_s": timeline,
        "dir": str(run_dir),
    }


def _named(url: str, name: str) -> str:
    """`url` with PostgreSQL's application_name set (how the lock sampler tells workers
    apart); a SQLite URL as it is."""
    if url.startswith("sqlite"):
        return url
    return make_url(normalize_url(url)).update_query_dict(
        {"application_name": name}).render_as_string(hide_password=False)


def _events(bootstrap: str, topic: str, ingest_id: str) -> dict[str, float]:
    """When each kind of event of the ingest was first sent (the last one for progress)."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=3000)
    try:
        seen: dict[str, float] = {}
        for message in consumer:
            event = json.loads(message.value)
            if event.get("ingest_id") == ingest_id:
                kind = event["type"]
                if kind == "progress":
                    seen.setdefault("first progress", event["ts"])
                    seen["last progress"] = event["ts"]
                else:
                    seen.setdefault(kind, event["ts"])
            if "completed" in seen:
                break
    finally:
        consumer.close()
    if "completed" not in seen:
        raise Failed(f"no completed event for {ingest_id} on {topic}")
    return seen


def _last_json(path: Path) -> dict:
    """The fetcher's result: the last line of its stdout that is a JSON object."""
    for line in reversed(path.read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise Failed(f"no JSON result in the fetcher's output {path}")


def _seconds(value: datetime | str) -> float:
    """Unix time of a timestamp SQLite stored (UTC, without a zone)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=value.tzinfo or UTC).timestamp()
