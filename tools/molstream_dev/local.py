"""`make local`: the whole pipeline on this machine, without Kubernetes.

Starts Kafka, Redis and an FTP server serving a generated sample on 127.0.0.1, runs the worker
and the fetcher as the real `molstream` commands (two processes, as in a cluster), prints the
report, the throughput and each process's peak memory, and stops what it started. With `--url`
(`make local URL=…`) the fetcher takes that file instead (any scheme it reads: ftp, ftps, http,
https, file; credentials from MOLSTREAM_SOURCE_USERNAME / _PASSWORD), and no FTP server starts.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from ._process import CACHE
from .ftp import FtpServer
from .kafka import KafkaServer
from .redis import RedisServer


def _wait(process: subprocess.Popen) -> tuple[int, float]:
    """Exit status and peak RSS (MiB) of one child."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss / 1024


def _free_ports(n: int) -> list[int]:
    """`n` different free ports (all bound at once, so none is handed out twice)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="make local")
    p.add_argument("--rows", type=int, default=int(os.environ.get("LOCAL_ROWS", 100_000)))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--url", help="ingest this file instead of a generated sample")
    p.add_argument("--dir", type=Path, default=CACHE / "local",
                   help="where the database, reports and scratch space go")
    args = p.parse_args(argv)

    base = args.dir
    ftp_root = base / "ftp"
    if not args.url:
        ftp_root.mkdir(parents=True, exist_ok=True)
        # molstream sample's default shape (chembl); the name keeps it apart from older files.
        sample = ftp_root / f"activities-{args.rows}-{args.seed}-chembl.csv.gz"
        if not sample.exists():
            print(f"generating {args.rows:,} sample rows → {sample}")
            subprocess.run([sys.executable, "-m", "molstream", "sample", "--rows",
                            str(args.rows), "--seed", str(args.seed), "--out", str(sample)],
                           check=True, stdout=subprocess.DEVNULL)
    database = base / "molstream.db"
    base.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        (base / f"molstream.db{suffix}").unlink(missing_ok=True)

    print("starting Kafka, Redis" + ("" if args.url else " and the FTP server")
          + " on 127.0.0.1 …")
    with KafkaServer() as kafka, RedisServer() as redis, (
            contextlib.nullcontext() if args.url else FtpServer(ftp_root)) as ftp:
        ingest_id = f"local-{time.strftime('%Y%m%dT%H%M%S')}"
        env = {
            **os.environ,
            "MOLSTREAM_KAFKA_BOOTSTRAP": kafka.bootstrap,
            "MOLSTREAM_REDIS_URL": redis.url,
            "MOLSTREAM_DATABASE_URL": f"sqlite:///{database}",
            "MOLSTREAM_REPORTS_DIR": str(base / "reports"),
            "MOLSTREAM_WORK_DIR": str(base / "work"),
        }
        if ftp is not None:
            # Our own FTP server on 127.0.0.1: loopback allowed for this run only (the
            # fetcher refuses every non-public address by default), and its password over
            # plain ftp:// (a local run: nothing crosses a network).
            env["MOLSTREAM_ALLOWED_NETWORKS"] = "127.0.0.0/8,::1/128"
            env["MOLSTREAM_ALLOW_INSECURE_CREDENTIALS"] = "true"
        if ftp is not None:
            env["MOLSTREAM_SOURCE_USERNAME"] = ftp.user
            env["MOLSTREAM_SOURCE_PASSWORD"] = ftp.password
        url = args.url or ftp.url(sample.name, with_credentials=False)
        if args.batch_size:
            env["MOLSTREAM_BATCH_SIZE"] = str(args.batch_size)
        molstream = [sys.executable, "-m", "molstream"]
        worker_port, fetcher_port = _free_ports(2)
        env["MOLSTREAM_METRICS_HOST"] = "127.0.0.1"
        print(f"metrics while it runs: worker http://127.0.0.1:{worker_port}/metrics, "
              f"fetcher http://127.0.0.1:{fetcher_port}/metrics")
        start = time.time()
        worker = subprocess.Popen(
            [*molstream, "worker", "--until-complete", ingest_id, "--progress",
             "--metrics-port", str(worker_port)],
            env={**env, "MOLSTREAM_PROGRESS_LINE": "1"})
        fetcher = subprocess.Popen(
            [*molstream, "fetch", "--url", url, "--ingest-id", ingest_id, "--progress",
             "--metrics-port", str(fetcher_port)],
            env=env, stdout=subprocess.DEVNULL)
        fetch_status, fetch_rss = _wait(fetcher)
        if fetch_status != 0:
            worker.terminate()
            worker.wait()
            print(f"the fetcher failed (exit {fetch_status})", file=sys.stderr)
            return fetch_status
        work_status, work_rss = _wait(worker)
        elapsed = time.time() - start
    if work_status != 0:
        print(f"the worker failed (exit {work_status})", file=sys.stderr)
        return work_status
    report = base / "reports" / f"{ingest_id}.csv"
    rows = _rows_total(report)
    print(f"\n{rows:,} rows end to end in {elapsed:.1f}s: {rows / elapsed:,.0f} rows/s")
    print(f"peak memory: fetcher {fetch_rss:.0f} MiB, worker {work_rss:.0f} MiB")
    print(f"database: {database}  report: {report}")
    return 0


def _rows_total(report: Path) -> int:
    with open(report, newline="") as f:
        for section, name, value in csv.reader(f):
            if (section, name) == ("summary", "rows_total"):
                return int(value or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
