"""A database whose disk is full: said once, in one line that names the volume and what it needs.

The worker already retries a full disk like any transient error (molstream.dberrors: the
batch's transaction rolls back, its Kafka offsets stay uncommitted, the same batch is tried
again with backoff, so no row already accepted is lost and none is applied twice). What this
adds is the telling: the first time an episode meets a full disk the worker logs one line and
sends a `database_full` event for the ingests it was applying (the operator shows it as
Failed, reason DatabaseFull), then once more every RESEND_S while it lasts; the first write that
succeeds again ends the episode (the worker's progress events take the IngestRequest back to
Ingesting).

How much it needs: the rows of the ingests still to apply × the bytes a row takes, as
bench/sizes.py measured them (1M ChEMBL-shaped rows: 111 MB in SQLite, 174 MB in PostgreSQL,
tables and indexes; ChEMBL's 24M: ~2.7 and ~4.2 GB), rounded up; on SQLite plus the WAL and
the activity indexes rebuilt at the end of a large ingest (a fifth to a quarter of it).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from .db import AppliedBatch

log = logging.getLogger(__name__)

# Bytes per activity row once applied (tables and indexes), bench/sizes.py at 1M rows, rounded
# up; what a large SQLite ingest needs beside: its WAL (journal_size_limit) and its activity
# indexes, rebuilt whole in one transaction at the end (they pass through the WAL).
BYTES_PER_ROW = {"sqlite": 120, "postgresql": 180}
SQLITE_WAL_BYTES = 64 * 1024**2
SQLITE_REBUILD_FRACTION = 0.25
# A SQLite volume with this much free was not what filled (its temporary files were).
ROOMY_BYTES = 256 * 1024**2
# While a full disk lasts, its event is sent again this often (an operator restarted meanwhile
# reads it from the topic anyway; this keeps the message's figures current).
RESEND_S = 300.0

_SQLITE_FULL = 13
_PG_DISK_FULL = "53100"


def is_disk_full(error: BaseException) -> bool:
    """SQLite's SQLITE_FULL ("database or disk is full"), PostgreSQL's disk_full (53100)."""
    orig = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF == _SQLITE_FULL:
        return True
    return getattr(orig, "sqlstate", None) == _PG_DISK_FULL


def size(n: float) -> str:
    """Bytes for people, in binary units as volumes are sized: 1.2 GiB, 340 MiB."""
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def mount_point(path: Path) -> Path:
    """The mount point of the file system `path` is on (the volume's root)."""
    path = path.resolve()
    dev = path.stat().st_dev
    while path != path.parent and path.parent.stat().st_dev == dev:
        path = path.parent
    return path


def needed_bytes(dialect: str, rows_left: int) -> int:
    per_row = BYTES_PER_ROW.get(dialect, BYTES_PER_ROW["postgresql"])
    need = rows_left * per_row
    if dialect == "sqlite":  # the WAL holds up to a transaction's pages, within its limit
        need = int(need * (1 + SQLITE_REBUILD_FRACTION)) + min(need, SQLITE_WAL_BYTES)
    return need


def describe(engine: Engine, error: BaseException, rows_left: int | None) -> str:
    """One line: what is full, where, how big it is, what the ingest still needs."""
    dialect = engine.dialect.name
    what = (f"the {rows_left:,} rows still to apply need about "
            f"{size(needed_bytes(dialect, rows_left))} more"
            if rows_left else "free some space")
    if dialect == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        db = Path(engine.url.database)
        volume = mount_point(db.parent)
        fs = os.statvfs(volume)
        total, free = fs.f_blocks * fs.f_frsize, fs.f_bavail * fs.f_frsize
        used = sum(_file_size(db.with_name(db.name + suffix)) for suffix in ("", "-wal"))
        if free >= ROOMY_BYTES:  # not this volume: SQLite's temporary files (sorts, indexes)
            tmp = os.environ.get("SQLITE_TMPDIR") or "/tmp"
            return (f"database full: SQLite could not write its temporary files, in {tmp} "
                    f"(SQLITE_TMPDIR; the database's volume {volume} has {size(free)} free): "
                    "give them more space (on Kubernetes the worker's /tmp emptyDir); the "
                    "worker retries the batch until it fits, nothing applied is lost")
        return (f"database full: the SQLite database {db} ({size(used)}) fills its volume "
                f"{volume} ({size(total)}, {size(free)} free): {what}; give the volume more "
                "space (on Kubernetes the chart's worker.persistence.size); the worker retries "
                "the batch until it fits, nothing applied is lost")
    orig = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    said = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    return (f"database full: PostgreSQL at {engine.url.host or 'localhost'} refused a write "
            f"({said}, SQLSTATE {getattr(orig, 'sqlstate', '?')}): {what} on the server's "
            "volume; give it more space; the worker retries the batch until it fits, nothing "
            "applied is lost")


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


@dataclass
class _Episode:
    since: float
    last_sent: float


class DiskFull:
    """Tells a full database once per episode (and every RESEND_S while it lasts).

    `send(ingest_id, reason, needed_bytes)` publishes the event. The worker says which batches
    it is working on (`working_on`: their ingests, and the rows of each ingest's whole file the
    batches carry), calls `noticed` with each error it retries, and `cleared` after database
    work that succeeded."""

    def __init__(self, engine: Engine, *, send: Callable[[str, str, int], None]) -> None:
        self._engine, self._send = engine, send
        self._ingests: dict[str, int | None] = {}  # ingest id -> rows in its file, if known
        self._episode: _Episode | None = None

    def working_on(self, batches: Iterable) -> None:
        """`batches`: molstream.messages.RowBatch (ingest_id, rows_total)."""
        self._ingests = {b.ingest_id: b.rows_total for b in batches}

    @property
    def full(self) -> bool:
        return self._episode is not None

    @property
    def ingests(self) -> tuple[str, ...]:
        return tuple(self._ingests)

    def noticed(self, error: BaseException) -> bool:
        """Whether `error` is a full disk (told, when it is time to)."""
        if not is_disk_full(error):
            return False
        now = time.monotonic()
        episode = self._episode
        if episode is not None and now - episode.last_sent < RESEND_S:
            return True
        self._episode = _Episode(since=episode.since if episode else now, last_sent=now)
        left = {i: self._rows_left(i, total) for i, total in self._ingests.items()}
        total = sum(n for n in left.values() if n) or None
        line = describe(self._engine, error, total)
        log.error("%s", line)
        for ingest_id in self._ingests:
            try:
                self._send(ingest_id, line, needed_bytes(self._engine.dialect.name,
                                                         left.get(ingest_id) or 0))
            except Exception as e:  # telling is best effort: the retry goes on regardless
                log.warning("could not publish the database_full event: %s", e)
        return True

    def cleared(self) -> bool:
        """A write succeeded: the episode (if any) is over; whether there was one."""
        if self._episode is None:
            return False
        log.info("the database takes writes again after %.0f s full; applying goes on",
                 time.monotonic() - self._episode.since)
        self._episode = None
        return True

    def _rows_left(self, ingest_id: str, rows_total: int | None) -> int | None:
        """The rows of the file not applied yet (committed batches' rows subtracted)."""
        if not rows_total:
            return None
        table = AppliedBatch.__table__
        try:
            with self._engine.connect() as conn:
                applied = conn.execute(select(func.coalesce(func.sum(table.c.rows), 0))
                                       .where(table.c.ingest_id == ingest_id)).scalar_one()
        except Exception as e:  # a read that fails too: the message goes without a figure
            log.debug("rows applied of %s unknown: %s", ingest_id, e)
            return None
        return max(0, rows_total - int(applied))
