"""`python -m bench.sizes` (`python -m bench --only sizes`): the disk each part of molstream
needs per million rows, and what that makes of ChEMBL's full release.

One file (the `molstream sample` of N rows, ChEMBL-shaped; and the real rows of
tests/data/chembl-real) is ingested twice, by the real `python -m molstream fetch` and
`worker` processes, into SQLite and into PostgreSQL, each database with its own topics on one
fresh broker. After each run (the second is the same release again: an upsert that changes
nothing) it measures:

- SQLite: the database file (and its WAL), and the largest the two got during the run;
  the space of each table and index (SQLite's dbstat);
- PostgreSQL: pg_database_size and pg_total_relation_size of each table (with its indexes:
  what is scaled per row);
- Kafka: the blocks the broker's log directory of each topic holds (du: index files are
  sparse), with the broker's defaults (retention 7 days, 1 GiB segments) and molstream's
  producer (no compression_type: a row batch is Arrow IPC compressed with zstd already);
- the fetcher's scratch: the download as served (the file's bytes: it is read from a file://
  URL here) plus the largest its work directory got.

It prints a table and writes bench/results/sizes.json. Per-million figures are measured;
the 24M column is extrapolated (activities × bytes per activity row), said so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from molstream_dev._process import CACHE, REPO
from molstream_dev.kafka import KafkaServer
from molstream_dev.postgres import PostgresServer

from . import data
from .results import RESULTS

REAL = REPO / "tests/data/chembl-real/activities.csv.gz"
FULL_ROWS = 24_000_000  # ChEMBL's activities table, the size every figure is judged at
TABLES = ("phase", "activity_type", "unit", "relation", "organism", "molecule", "target",
          "activity", "ingest_run", "applied_batch", "applied_part")


def _log(message: str) -> None:
    print(f"[sizes {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def du(path: Path) -> int:
    """Bytes of disk blocks the files under `path` take (sparse files count what they use)."""
    if not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_blocks * 512
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


class Peak:
    """The largest `measure()` got while the block ran (sampled every 50 ms)."""

    def __init__(self, measure: Callable[[], int]) -> None:
        self._measure, self.value = measure, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.wait(0.05):
            try:
                self.value = max(self.value, self._measure())
            except OSError:  # a file went while it was listed
                pass

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        self.value = max(self.value, self._measure())


def _env(prefix: str, database_url: str, bootstrap: str, work: Path) -> dict:
    return {**os.environ, "MOLSTREAM_KAFKA_BOOTSTRAP": bootstrap,
            "MOLSTREAM_TOPIC_PREFIX": prefix, "MOLSTREAM_WORKER_GROUP": f"{prefix}-worker",
            "MOLSTREAM_REDIS_URL": "", "MOLSTREAM_DATABASE_URL": database_url,
            "MOLSTREAM_REPORTS_DIR": str(work / "reports"),
            "MOLSTREAM_WORK_DIR": str(work / "scratch")}


def _ingest(source: Path, ingest_id: str, env: dict, work: Path,
            database_bytes: Callable[[], int]) -> dict:
    """Fetch, then apply, one ingest of `source`; the peaks of the scratch and the database."""
    molstream = [sys.executable, "-m", "molstream"]
    with Peak(lambda: du(work / "scratch")) as scratch:
        done = subprocess.run([*molstream, "fetch", "--url", f"file://{source}",
                               "--ingest-id", ingest_id, "--no-progress"],
                              env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"fetch failed: {done.stderr[-2000:]}")
    with Peak(database_bytes) as database:
        done = subprocess.run([*molstream, "worker", "--until-complete", ingest_id,
                               "--no-progress", "--idle-timeout", "600"],
                              env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"worker failed: {done.stderr[-2000:]}")
    return {"scratch_peak": scratch.value, "database_peak": database.value}


def _sqlite_sizes(path: Path) -> dict:
    import sqlite3

    with sqlite3.connect(path) as conn:
        per = dict(conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))
        owners = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master"))
    tables: dict[str, int] = {}
    for name, size in per.items():
        table = owners.get(name, name)
        tables[table] = tables.get(table, 0) + size
    # the activity table's indexes: rebuilt whole at the end of a large ingest (deferred), so
    # the WAL holds them once before the checkpoint
    indexes = {n: size for n, size in per.items()
               if owners.get(n) == "activity" and n != "activity"}
    return {"file": path.stat().st_size, "wal": du(path.with_name(path.name + "-wal")),
            "tables": tables, "activity_indexes": indexes}


def _pg_sizes(url: str, tables=TABLES) -> dict:
    import psycopg
    from molstream.db import normalize_url
    from sqlalchemy import make_url

    dsn = make_url(normalize_url(url)).set(drivername="postgresql").render_as_string(
        hide_password=False)
    with psycopg.connect(dsn) as conn:
        total = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        tables = {t: conn.execute("SELECT pg_total_relation_size(%s::regclass)",
                                  (t,)).fetchone()[0] for t in tables}
    return {"database": total, "tables": tables}


def _kafka_sizes(log_dir: Path, prefix: str) -> dict:
    return {kind: sum(du(d) for d in log_dir.glob(f"{prefix}.{kind}-*"))
            for kind in ("rows", "rejected", "events")}


def _count(url: str) -> dict:
    from molstream.db import normalize_url
    from sqlalchemy import create_engine, func, select
    from sqlalchemy import table as sql_table

    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            return {t: conn.execute(select(func.count()).select_from(sql_table(t))).scalar_one()
                    for t in ("activity", "molecule", "target")}
    finally:
        engine.dispose()


def measure(source: Path, rows: int, database: str, kafka: KafkaServer,
            postgres: PostgresServer | None, work: Path) -> dict:
    """Two runs of `source` into a fresh `database` ("sqlite" or "postgres")."""
    prefix = f"sizes{uuid.uuid4().hex[:8]}"
    work = work / prefix
    work.mkdir(parents=True)
    if database == "sqlite":
        path = work / "molstream.db"
        url = f"sqlite:///{path}"
        def database_bytes() -> int:
            return du(path) + du(path.with_name(path.name + "-wal"))
        sizes = lambda: _sqlite_sizes(path)  # noqa: E731
    else:
        url = postgres.new_database()
        sizes = lambda: _pg_sizes(url)  # noqa: E731
        database_bytes = lambda: _pg_sizes(url, tables=())["database"]  # noqa: E731
    env = _env(prefix, url, kafka.bootstrap, work)
    runs = []
    for run in (1, 2):
        _log(f"{source.name} into {database}, run {run}")
        t = time.monotonic()
        peaks = _ingest(source, f"{prefix}-{run}", env, work, database_bytes)
        runs.append({**peaks, "seconds": round(time.monotonic() - t, 1),
                     "database": sizes(),
                     "kafka": _kafka_sizes(kafka.dir / "data", prefix)})
    counts = _count(url)
    return {"counts": counts, "activities": counts["activity"],
            "source": str(source.relative_to(REPO) if source.is_relative_to(REPO) else source),
            "source_bytes": source.stat().st_size, "rows": rows,
            "database": database, "runs": runs}


CHEMBL_MOLECULES = 2_500_000  # ChEMBL 35: ~2.5M compounds for ~24M activities (about 10%)


def per_million(result: dict) -> dict:
    """Bytes per million activity rows: after one run, what the second added, peaks. The SQLite
    WAL is bounded (journal_size_limit), so it is kept apart, not scaled."""
    scale = 1e6 / result["activities"]
    one, two = result["runs"]
    sqlite = result["database"] == "sqlite"
    # PostgreSQL: its tables and their indexes (an empty database's ~7.5 MB of catalog would
    # dominate a small file's figure once scaled); pg_database_size is in the JSON too
    db = (lambda r: r["database"]["file"]) if sqlite else (
        lambda r: sum(r["database"]["tables"].values()))
    molecules = one["database"]["tables"].get("molecule", 0)
    return {
        "database": db(one) * scale,
        # bytes, not scaled: measured as the peak was (SQLite's file and WAL; PostgreSQL's
        # pg_database_size)
        "database_peak_over_final": one["database_peak"] - (
            one["database"]["file"] + one["database"]["wal"] if sqlite
            else one["database"]["database"]),
        "database_second_run": (db(two) - db(one)) * scale,
        "sqlite_wal": one["database"].get("wal", 0) if sqlite else None,
        "sqlite_deferred_indexes": (sum(one["database"].get("activity_indexes", {}).values())
                                    * scale if sqlite else None),
        "kafka_rows": one["kafka"]["rows"] * scale,
        "kafka_events": one["kafka"]["events"] * scale,
        "kafka_rejected": one["kafka"]["rejected"] * scale,
        "kafka_two_runs": sum(two["kafka"].values()) * scale,
        "scratch": (result["source_bytes"] + one["scratch_peak"]) * scale,
        # ChEMBL's 24M: what scales with activities, plus the molecule table at ChEMBL's ratio
        "database_24m_chembl": (db(one) - molecules) * scale * 24
        + molecules / result["counts"]["molecule"] * CHEMBL_MOLECULES,
    }


def _mb(n: float | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:,.0f} MB" if n < 10e9 else f"{n / 1e9:,.1f} GB"


def table(results: list[dict]) -> str:
    lines = [f"{'per 1M activity rows (measured)':46}" + "".join(
        f"{r['database'] + ' ' + Path(r['source']).name[:18]:>30}" for r in results)]
    keys = [("database after one run", "database"),
            ("database growth, second run (same file)", "database_second_run"),
            ("  SQLite: activity indexes rebuilt at end", "sqlite_deferred_indexes"),
            ("Kafka rows topic, one run", "kafka_rows"),
            ("Kafka events topic, one run", "kafka_events"),
            ("Kafka rejected topic, one run", "kafka_rejected"),
            ("Kafka, all topics, two runs", "kafka_two_runs"),
            ("fetcher scratch (download + peak)", "scratch")]
    figures = [per_million(r) for r in results]
    for label, key in keys:
        lines.append(f"{label:46}" + "".join(f"{_mb(f[key]):>30}" for f in figures))
    lines.append(f"{'not scaled: peak over final, this run':46}" + "".join(
        f"{_mb(f['database_peak_over_final']):>30}" for f in figures))
    lines.append(f"{'not scaled: SQLite WAL left (<= 64 MiB)':46}" + "".join(
        f"{_mb(f['sqlite_wal']):>30}" for f in figures))
    lines.append("")
    lines.append("extrapolated to 24M rows (not measured):")
    lines.append(f"{'  database, rows x 24':46}" + "".join(
        f"{_mb(f['database'] * 24):>30}" for f in figures))
    lines.append(f"{'  database, 2.5M molecules as in ChEMBL':46}" + "".join(
        f"{_mb(f['database_24m_chembl']):>30}" for f in figures))
    lines.append(f"{'  Kafka, two runs':46}" + "".join(
        f"{_mb(f['kafka_two_runs'] * 24):>30}" for f in figures))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sizes", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=int(os.environ.get("ROWS", 1_000_000)))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--databases", default="sqlite,postgres")
    p.add_argument("--out", type=Path, default=RESULTS / "sizes.json")
    args = p.parse_args(argv)
    databases = [d for d in args.databases.split(",") if d]
    sample = data.sample(args.rows, args.seed, "chembl")
    work = CACHE / "bench" / "sizes" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    work.mkdir(parents=True)
    meta = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "load_before": os.getloadavg()[0],
            "rows": args.rows, "kafka": "broker defaults: log.retention.hours=168, "
            "log.segment.bytes=1GiB; producer compression_type none (batches are zstd Arrow)"}
    results = []
    kafka = KafkaServer()
    try:
        with kafka, (PostgresServer() if "postgres" in databases else _Null()) as pg:
            for source, rows in ((sample, args.rows), (REAL, None)):
                for database in databases:
                    r = measure(source, rows or 0, database, kafka, pg, work)
                    results.append(r)
    finally:
        kafka.remove()
        subprocess.run(["rm", "-rf", str(work)], check=False)
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results,
                                    "per_million": [per_million(r) for r in results]},
                                   indent=1) + "\n")
    print(f"\nwritten: {args.out}")
    return 0


class _Null:
    def __enter__(self):
        return None

    def __exit__(self, *exc) -> None:
        return None


if __name__ == "__main__":
    sys.exit(main())
