"""Apply one batch of rows to the database in one transaction, idempotently.

Order inside the transaction: skip if the batch is already recorded as applied (or its ingest
has failed); resolve the five dimensions (cache first, then `INSERT … ON CONFLICT DO NOTHING`
+ `SELECT` for the new values); upsert molecules and targets (deduplicated within the batch,
sorted by key so that concurrent PostgreSQL workers lock rows in the same order); upsert
activities; record the batch. In insert-only mode existing rows are left as they are; in upsert
mode they are updated only where a value differs, so `last_modified_on` moves only for rows that
really changed. Only the columns the batch holds are written: an optional column its file lacks
keeps its value in existing rows (and is NULL in new ones).

On PostgreSQL a batch takes two transactions: its dimension values, molecules and targets in a
short one, claimed and counted in `applied_part` before it writes anything, then its activities
and its record (see `_apply_in_two_steps`). The statements that write the rows are
molstream.writes': on PostgreSQL COPY and, for the rows not known new, one set-based merge
each (molstream.pgmerge), which locks only the rows that change; on SQLite executemany
(molstream.inserts). Which activities are new is decided per id (one index probe per batch),
so that a file out of id order takes the fast paths as one in order does.

A batch the database refuses (molstream.dberrors): a transient error goes back to the caller,
which retries; a refused value sends the batch through again in halves, each in a savepoint,
down to the rows the database refuses, which are rejected with its reason while the others are
applied; any other error fails the batch's ingest (`Refused`), and its later batches are skipped.
A reference refused on a dimension column is first retried once: the ids are checked again.

Soft delete: a molecule, target or activity a person soft-deleted (`active` false) stays so
when a file brings it again. Its values are updated like any row's, and it is counted apart
(`Applied.inactive`), not as written: the report's written rows are all active ones.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pyarrow as pa
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from . import metrics, mirror, pending, pgmerge
from .applied import Applied, Outcome, Refused, Transaction
from .cache import IdCache
from .config import Mode
from .contract import LINE, Rejection
from .db import INACTIVE_INDEXES, Activity, AppliedBatch, AppliedPart, IngestRun
from .dberrors import Kind, classify, describe, is_foreign_key
from .messages import EndOfIngest, RowBatch
from .rows import (
    int64s,
)
from .writes import RowWriter

log = logging.getLogger(__name__)

# An ingest of at least this many rows, and at least as many as the activity table holds, is
# applied on SQLite without the activity table's secondary indexes, rebuilt once at the end.
BULK_MIN_ROWS = 200_000

_ACTIVITY = Activity.__table__
_RUN = IngestRun.__table__
_APPLIED = AppliedBatch.__table__
_PART = AppliedPart.__table__
# What a large ingest on SQLite builds at its end (`Applier.plan`): not the partial index of
# soft-deleted rows, which stays small and is looked up all along.
_DEFERRABLE = [i for i in _ACTIVITY.indexes if i.name not in INACTIVE_INDEXES]

OnRejected = Callable[[str, list[Rejection]], None]


class _AppliedElsewhere(Exception):
    """The batch's record appeared while this transaction applied it: another worker's."""


__all__ = ["Applied", "Applier", "Outcome", "Refused"]


class Applier:
    def __init__(self, engine: Engine, cache: IdCache) -> None:
        self.engine = engine
        self.cache = cache
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self.rows = RowWriter(engine, cache)
        self._planned: set[str] = set()  # ingests already considered for deferred indexes
        self._sqlite = engine.dialect.name == "sqlite"
        if not self._sqlite:
            pgmerge.install(engine)
        self.indexes_deferred = False

    # -- large ingests on SQLite ----------------------------------------------------------

    def plan(self, batches: list[RowBatch]) -> None:
        """Before applying `batches`: on SQLite, when one of them opens an ingest of at least
        BULK_MIN_ROWS rows and at least as many as the activity table holds, drop the activity
        table's secondary indexes (molecule_id, target_id) until `restore_indexes`.

        Keeping them up to date costs a random insert into each per row, ~40% of the time a
        bulk ingest takes; building them afterwards is one sort (~1 s per million rows). Until
        then, looking activities up by molecule or target scans the table; foreign keys are
        checked as before (they need the parents' keys only). A worker that stops in between
        gets them back from `create_schema` when it starts again.
        """
        if self.engine.dialect.name != "sqlite" or self.indexes_deferred:
            return
        fresh = {b.ingest_id: b.rows_total for b in batches
                 if b.ingest_id not in self._planned and (b.rows_total or 0) >= BULK_MIN_ROWS}
        if not fresh:
            return
        self._planned.update(fresh)
        with self.engine.begin() as conn:
            held = conn.execute(select(func.count()).select_from(_ACTIVITY)).scalar_one()
            if max(fresh.values()) >= held:
                for index in _DEFERRABLE:
                    index.drop(conn, checkfirst=True)
                self.indexes_deferred = True
                self.rows.holding = max(fresh, key=fresh.get)
                log.info("ingest of %d rows into %d: activity indexes deferred to its end",
                         max(fresh.values()), held)

    def restore_indexes(self) -> None:
        """Build the indexes `plan` dropped, if it did: after the activities held out of id
        order are in the table (molstream.pending), so that each index is built once."""
        if self.indexes_deferred:
            self.rows.holding = None
            merged = pending.merge_each(self.engine)
            if merged:
                log.info("%d activities held out of id order inserted", merged)
            with self.engine.begin() as conn:
                for index in _DEFERRABLE:
                    index.create(conn, checkfirst=True)
            self.indexes_deferred = False
            log.info("activity indexes rebuilt")

    # -- public ---------------------------------------------------------------------------

    def apply(self, batch: RowBatch, on_rejected: OnRejected | None = None) -> Outcome:
        """Apply `batch`; None when it had been applied before (a redelivery)."""
        return self.apply_many([batch], on_rejected)[0]

    def apply_many(self, batches: list[RowBatch], on_rejected: OnRejected | None = None,
                   *, retried: bool = False) -> list[Outcome]:
        """Apply `batches` in order, in one transaction: all of them or none. One outcome per
        batch. A transient database error is raised (the caller retries); a refused one is
        settled batch by batch (see the module's docstring). `on_rejected` hears the rows the
        database refused before the transaction that records them commits.

        Fewer, larger transactions are much cheaper on SQLite: a commit writes every page the
        transaction touched to the WAL, and rows spread over the activity table's indexes touch
        most of their pages whatever the batch size (10,000-row transactions: ~37k rows/s;
        50,000: ~50k rows/s). Several workers on PostgreSQL should apply one batch per
        transaction (`Worker` does), so that each transaction takes its row locks in key order.
        """
        try:
            results: list[Outcome] = self._apply_together(batches)
        except DBAPIError as e:
            kind = classify(e)
            if kind is Kind.TRANSIENT:
                raise  # counted where it is retried (the worker)
            if len(batches) > 1:  # which one? each on its own (and each counts its error)
                return [r for b in batches for r in self.apply_many([b], on_rejected)]
            if kind is Kind.ROWS and is_foreign_key(e) and not retried:
                # A dimension value deleted after its id was checked (PostgreSQL: another
                # session, between two statements): check the ids again, once.
                log.warning("ingest %s batch %d: %s; applying it again with its ids checked "
                            "again", batches[0].ingest_id, batches[0].seq, describe(e))
                self.cache.forget_local()
                return self.apply_many(batches, on_rejected, retried=True)
            metrics.DATABASE_ERRORS.labels(kind.value).inc()
            results = [self._settle_refused(batches[0], e, kind, on_rejected)]
        # Only ids that are committed may be shared through the cache.
        for result in results:
            for dimension, ids in (result.new_ids.items() if isinstance(result, Applied) else ()):
                self.cache.remember(dimension, ids)
        return results

    def record_end(self, end: EndOfIngest) -> None:
        with self.engine.begin() as conn:
            self._ensure_run(conn, end.ingest_id, end.mode, end.fetch_started_at)
            conn.execute(update(_RUN).where(_RUN.c.id == end.ingest_id).values(
                source=end.source, batches_expected=end.batches, rows_total=end.rows_total,
                rows_published=end.rows_published, rows_rejected=end.rows_rejected,
                release=end.release, source_identity=end.source_identity,
                mirror_key=(end.mirror_key or end.source) if end.mode is Mode.MIRROR else None))

    # -- one transaction ------------------------------------------------------------------

    def _apply_together(self, batches: list[RowBatch]) -> list[Outcome]:
        try:
            return self._apply_in_one_transaction(batches)
        except _AppliedElsewhere:  # rolled back: apply what is still missing, one by one
            if len(batches) == 1:
                return [None]
            return [r for b in batches for r in self._apply_together([b])]

    def _apply_in_one_transaction(self, batches: list[RowBatch]) -> list[Outcome]:
        if not self._sqlite and len(batches) == 1:
            return [self._apply_in_two_steps(batches[0])]
        results: list[Outcome] = []
        with _gc_paused(), self.engine.connect() as conn, conn.begin() as transaction:
            tx = Transaction()
            for batch in batches:
                if not self._open(conn, batch, tx):
                    results.append(None)
                    continue
                result = self.rows.apply_rows(conn, batch, batch.rows, tx)
                self._record(conn, batch, result)
                results.append(result)
            with metrics.COMMIT_SECONDS.time():
                transaction.commit()
        return results

    def _apply_in_two_steps(self, batch: RowBatch) -> Outcome:
        """PostgreSQL: the batch's dimension values, molecules and targets in a short
        transaction, then its activities and its record in another.

        Workers apply batches that bring the same new molecules (a molecule is measured in
        many batches): in one transaction, the second worker's insert of a molecule waits for
        the first worker's whole batch to commit. Committed apart, such rows are held for
        milliseconds.

        The first step claims the batch before it writes anything: its row in `applied_part`,
        inserted first thing, stays until the batch's record (`applied_batch`) takes it over in
        the second step. A second copy of the batch (a redelivery, or a worker that lost its
        partitions and is still applying what it polled) waits for the first copy's claim,
        then finds it and writes no molecule or target: it never puts back an older value over
        a newer ingest's. What the first step wrote is counted in the claim, and counted once
        whoever records the batch."""
        result = Applied(batch.ingest_id, batch.seq, batch.rows.num_rows)
        with _gc_paused():
            with self.engine.connect() as conn:
                step = conn.begin()
                tx = Transaction()
                claimed = conn.execute(self._insert(_PART).values(
                    ingest_id=batch.ingest_id, seq=batch.seq, written={},
                ).on_conflict_do_nothing(index_elements=["ingest_id", "seq"])
                    .returning(_PART.c.seq)).first() is not None
                if not self._open(conn, batch, tx):  # applied before, or its ingest failed
                    step.rollback()  # and the claim with it
                    return None
                if claimed:
                    ids = self.rows.resolve_dimensions(conn, batch.rows, result, tx)
                    self.rows.write_parents(conn, batch, batch.rows, ids, result, tx)
                    written, inactive = result.take_counts()
                    conn.execute(update(_PART).where(
                        _PART.c.ingest_id == batch.ingest_id, _PART.c.seq == batch.seq,
                    ).values(written=written, inactive=inactive))
                    step.commit()
                else:  # an earlier copy did this step: only the ids are needed, below
                    step.rollback()
                    ids = None
            with self.engine.connect() as conn, conn.begin() as transaction:
                tx = Transaction()
                if not self._open(conn, batch, tx):
                    return None
                if ids is None:
                    ids = self.rows.resolve_dimensions(conn, batch.rows, result, tx)
                self.rows.write_activities(conn, batch, batch.rows, ids, result, tx)
                self._record(conn, batch, result)
                with metrics.COMMIT_SECONDS.time():
                    transaction.commit()
        return result

    def _open(self, conn: Connection, batch: RowBatch, tx: Transaction) -> bool:
        """Start `batch` in the transaction; False when it must not be applied: applied
        before (a redelivery), or its ingest has failed."""
        self._ensure_run(conn, batch.ingest_id, batch.mode, batch.fetch_started_at)
        if self._sqlite and tx.stamp is None:
            # The write lock is ours from the statement above until the commit.
            # The format is the columns' default (db.py), so stamps compare as text.
            tx.stamp = conn.exec_driver_sql(
                "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')").scalar_one()
        run = conn.execute(select(_RUN.c.status, _RUN.c.number).where(
            _RUN.c.id == batch.ingest_id)).one()
        if run.status == "failed":
            return False
        tx.runs[batch.ingest_id] = run.number
        done = conn.execute(select(_APPLIED.c.seq).where(
            _APPLIED.c.ingest_id == batch.ingest_id, _APPLIED.c.seq == batch.seq)).first()
        return done is None

    def _record(self, conn: Connection, batch: RowBatch, result: Applied) -> None:
        # A row per batch and nothing else: no counter row that every transaction of an
        # ingest would update (and, with several PostgreSQL workers, wait for).
        if not self._sqlite:  # what a first step committed (`_apply_in_two_steps`)
            part = conn.execute(delete(_PART).where(
                _PART.c.ingest_id == batch.ingest_id, _PART.c.seq == batch.seq,
            ).returning(_PART.c.written, _PART.c.inactive)).first()
            if part is not None:
                result.add_counts(part.written, part.inactive)
        mirrored = {"restored": result.restored}  # activities a mirror had retired, back
        if batch.mode is Mode.MIRROR:  # which activities the file holds (molstream.mirror)
            mirrored.update(ids=mirror.batch_ids(int64s(batch.rows.column("activity_id"))),
                            inserted=result.inserted)
        recorded = conn.execute(self._insert(_APPLIED).values(
            ingest_id=batch.ingest_id, seq=batch.seq, rows=result.rows,
            written=result.written, inactive=result.inactive, rejected=len(result.rejected),
            **mirrored,
        ).on_conflict_do_nothing(index_elements=["ingest_id", "seq"])
            .returning(_APPLIED.c.seq)).first()
        if recorded is None:  # another worker applied it meanwhile (a redelivery raced us)
            raise _AppliedElsewhere

    # -- a batch the database refuses -----------------------------------------------------

    def _settle_refused(self, batch: RowBatch, error: DBAPIError, kind: Kind,
                        on_rejected: OnRejected | None) -> Outcome:
        reason = describe(error)
        if kind is Kind.ROWS:
            log.warning("ingest %s batch %d: the database refused a value (%s); finding the "
                        "rows it refuses", batch.ingest_id, batch.seq, reason)
            try:
                return self._apply_isolating(batch, on_rejected)
            except DBAPIError as e:
                if classify(e) is Kind.TRANSIENT:
                    raise
                reason = describe(e)
        reason = f"batch {batch.seq}: {reason}"
        log.error("ingest %s fails: the database refuses %s", batch.ingest_id, reason)
        try:
            with self.engine.begin() as conn:
                self._ensure_run(conn, batch.ingest_id, batch.mode, batch.fetch_started_at)
                conn.execute(update(_RUN).where(
                    _RUN.c.id == batch.ingest_id, _RUN.c.status == "running").values(
                    status="failed", failure=reason))
        except DBAPIError as e:
            # Not even the failure can be written (a read-only database, a permission): stop
            # here, offsets uncommitted, rather than move on and lose the batch.
            log.error("ingest %s: could not record its failure either (%s)", batch.ingest_id,
                      describe(e))
            raise
        return Refused(batch.ingest_id, batch.seq, reason)

    def _apply_isolating(self, batch: RowBatch, on_rejected: OnRejected | None) -> Outcome:
        """Apply `batch` in halves, each in a savepoint, down to single rows: the rows the
        database refuses are rejected with its reason, the others applied. k bad rows of n
        cost about 2·k·log2(n) attempts."""
        try:
            return self._isolate(batch, on_rejected)
        except _AppliedElsewhere:
            return None

    def _isolate(self, batch: RowBatch, on_rejected: OnRejected | None) -> Applied | None:
        with _gc_paused(), self.engine.begin() as conn:
            tx = Transaction()
            if not self._open(conn, batch, tx):
                return None
            # On PostgreSQL, a first step done (claimed: by this copy or an earlier one) wrote
            # the molecules and targets; writing them again could put an older value back
            # over a newer ingest's. Only the activities are left to isolate.
            parents = self._sqlite or conn.execute(select(_PART.c.seq).where(
                _PART.c.ingest_id == batch.ingest_id, _PART.c.seq == batch.seq)).first() is None
            result = Applied(batch.ingest_id, batch.seq, 0)
            parts = [batch.rows]
            while parts:
                part = parts.pop()
                savepoint = conn.begin_nested()
                try:
                    done = self.rows.apply_rows(conn, batch, part,
                                            Transaction(stamp=tx.stamp, runs=tx.runs),
                                            parents=parents)
                except DBAPIError as e:
                    savepoint.rollback()
                    if classify(e) is not Kind.ROWS:
                        raise
                    if part.num_rows == 1:
                        result.rejected.append(_rejection(batch, part, e))
                        continue
                    half = part.num_rows // 2
                    parts += [part.slice(half), part.slice(0, half)]  # first half first
                    continue
                savepoint.commit()
                result.add(done)
                result.rows += part.num_rows
            if result.rejected and on_rejected is not None:
                on_rejected(batch.ingest_id, result.rejected)
            self._record(conn, batch, result)
        log.warning("ingest %s batch %d: %d row(s) rejected by the database, %d applied",
                    batch.ingest_id, batch.seq, len(result.rejected), result.rows)
        return result

    # -- steps ----------------------------------------------------------------------------

    def _ensure_run(self, conn: Connection, ingest_id: str, mode: Mode, t0: float) -> None:
        stmt = self._insert(_RUN).values(id=ingest_id, mode=mode.value, fetch_started_at=t0)
        if self._sqlite:  # (PostgreSQL numbers its runs itself: an identity column)
            stmt = stmt.values(number=select(func.coalesce(func.max(_RUN.c.number), 0) + 1)
                               .scalar_subquery())
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a transaction builds its rows: a million new tuples
    set off hundreds of collections that find nothing to free (~5% of the worker's time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _rejection(batch: RowBatch, row: pa.Table, error: DBAPIError) -> Rejection:
    values = row.to_pylist()[0]
    line = values.pop(LINE, None)  # absent from a batch some other producer made
    return Rejection(
        -1 if line is None else line,
        f"the database refused the row (batch {batch.seq}): {describe(error)}",
        {k: "" if v is None else str(v)[:200] for k, v in values.items()})
