"""PostgreSQL's figures: the limit (the same rows COPY'd into the same eight tables, no Kafka)
and the lock waits of each worker during an end-to-end run.

Lock waits are sampled: every SAMPLE_S, `pg_stat_activity` says which backends wait for a
heavyweight lock (`wait_event_type = 'Lock'`: a row, a tuple, a transaction id); each worker's
backends carry its name as `application_name` (bench.e2e). A worker's lock wait is the number
of samples that found it waiting times the time between samples: accurate to a few SAMPLE_S,
enough to tell 1% from 20% of an apply phase.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from molstream.db import create_schema, make_engine, normalize_url
from sqlalchemy import make_url

from .limit import _COLUMNS, _TABLES, prepare

SAMPLE_S = 0.05


def _dsn(url: str) -> str:
    """A libpq connection string of a SQLAlchemy URL."""
    u = make_url(normalize_url(url))
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def lock_sampler(url: str, names: list[str]) -> Iterator[dict[str, float]]:
    """While the block runs, seconds each of `names` (application names) waited for a lock;
    the dict is filled when the block ends."""
    waited: dict[str, float] = {}
    stop = threading.Event()
    counts: Counter[str] = Counter()
    spans = []

    def sample() -> None:
        with psycopg.connect(_dsn(url), autocommit=True) as conn:
            last = time.perf_counter()
            while not stop.wait(SAMPLE_S):
                now = time.perf_counter()
                spans.append(now - last)
                last = now
                for (name,) in conn.execute(
                        "SELECT application_name FROM pg_stat_activity "
                        "WHERE wait_event_type = 'Lock' AND application_name = ANY(%s)",
                        (names,)):
                    counts[name] += 1

    thread = threading.Thread(target=sample, daemon=True, name="lock-sampler")
    thread.start()
    try:
        yield waited
    finally:
        stop.set()
        thread.join(30)
        step = sum(spans) / len(spans) if spans else SAMPLE_S
        waited.update({name: counts[name] * step for name in names})


def _csv(columns: tuple[str, ...], rows: list[tuple]) -> memoryview:
    table = pa.table([pa.array(c) for c in zip(*rows, strict=True)] if rows else
                     [pa.array([], pa.int64()) for _ in columns], names=list(columns))
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False,
                                                      quoting_style="needed"))
    return memoryview(sink.getvalue())


def limit(rows: pa.Table, url: str) -> dict:
    """`rows` COPY'd into the eight tables of the empty database at `url` (schema, reference
    checks, indexes and triggers made by molstream), in one transaction; rows/s of the COPYs
    and the commit. Preparing the rows (dimension ids, deduplicated molecules and targets, the
    CSV) is not timed, as in bench.limit."""
    engine = make_engine(url)
    try:
        create_schema(engine)
    finally:
        engine.dispose()
    t = time.perf_counter()
    prepared = prepare(rows)
    # As CSV, the way the worker COPYs (molstream.pgmerge): what is timed is PostgreSQL's work.
    csv = {name: _csv(_COLUMNS[name], prepared[name]) for name in _TABLES}
    prepare_s = time.perf_counter() - t
    with psycopg.connect(_dsn(url)) as conn:
        t = time.perf_counter()
        with conn.cursor() as cursor:
            for name in _TABLES:
                columns = ", ".join(_COLUMNS[name])
                with cursor.copy(f"COPY {name} ({columns}) FROM STDIN (FORMAT csv)") as copy:
                    copy.write(csv[name])
        conn.commit()
        load_s = time.perf_counter() - t
    return {"rows": rows.num_rows, "seconds": load_s, "prepare_seconds": prepare_s,
            "rows_per_s": rows.num_rows / load_s,
            "table_rows": {name: len(r) for name, r in prepared.items()}}
