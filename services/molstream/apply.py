"""Apply one batch of rows to the database in one transaction, idempotently.

Order inside the transaction: skip if the batch is already recorded as applied; resolve the
five dimensions (cache first, then `INSERT … ON CONFLICT DO NOTHING` + `SELECT` for the new
values); upsert molecules and targets (deduplicated within the batch, sorted by key so that
concurrent PostgreSQL workers lock rows in the same order); upsert activities; record the
batch. In insert-only mode existing rows are left as they are; in upsert mode they are updated
only where a value differs, so `last_modified_on` moves only for rows that really changed.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine, Table, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from .cache import IdCache
from .config import Mode
from .db import DIMENSIONS, Activity, AppliedBatch, IngestRun, Molecule, Target, utcnow
from .messages import TABLES, EndOfIngest, RowBatch

log = logging.getLogger(__name__)

# An ingest of at least this many rows, and at least as many as the activity table holds, is
# applied on SQLite without the activity table's secondary indexes, rebuilt once at the end.
BULK_MIN_ROWS = 200_000

_MOLECULE = Molecule.__table__
_TARGET = Target.__table__
_ACTIVITY = Activity.__table__
_RUN = IngestRun.__table__
_APPLIED = AppliedBatch.__table__

# CSV column feeding each dimension table.
DIMENSION_COLUMNS = {
    "phase": "molecule_max_phase",
    "activity_type": "activity_type",
    "unit": "activity_units",
    "relation": "activity_relation",
    "organism": "target_organism",
}


_STAMPS = ("created_on", "last_modified_on")


@dataclass
class _Transaction:
    """What the batches applied in one transaction share."""

    # Molecule and target rows this transaction already wrote: the same row again (a
    # molecule measured in many batches) would change nothing, so it is not sent again. Only
    # within one transaction: nobody else can change those rows before it commits.
    written: dict[str, dict[int, tuple]] = field(
        default_factory=lambda: {"molecule": {}, "target": {}})
    stamp: str | None = None  # SQLite: created_on/last_modified_on of the rows it inserts

    @property
    def stamps(self) -> tuple[str, ...]:
        """What ends each row this transaction inserts: the stamp twice on SQLite, or nothing."""
        return () if self.stamp is None else (self.stamp, self.stamp)


@dataclass
class Applied:
    """What one batch did: rows written (inserted or changed) per table."""

    ingest_id: str
    seq: int
    rows: int
    written: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    new_ids: dict[str, dict] = field(default_factory=dict)
    all_in: bool = False  # every batch the fetcher announced has now been applied

    @property
    def rows_written(self) -> int:
        return self.written["activity"]


class Applier:
    def __init__(self, engine: Engine, cache: IdCache) -> None:
        self.engine = engine
        self.cache = cache
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._statements: dict[tuple, tuple[str, tuple[str, ...] | None]] = {}
        self._planned: set[str] = set()  # ingests already considered for deferred indexes
        self._sqlite = engine.dialect.name == "sqlite"
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
                for index in _ACTIVITY.indexes:
                    index.drop(conn, checkfirst=True)
                self.indexes_deferred = True
                log.info("ingest of %d rows into %d: activity indexes deferred to its end",
                         max(fresh.values()), held)

    def restore_indexes(self) -> None:
        """Build the indexes `plan` dropped, if it did."""
        if self.indexes_deferred:
            with self.engine.begin() as conn:
                for index in _ACTIVITY.indexes:
                    index.create(conn, checkfirst=True)
            self.indexes_deferred = False
            log.info("activity indexes rebuilt")

    # -- public ---------------------------------------------------------------------------

    def apply(self, batch: RowBatch) -> Applied | None:
        """Apply `batch`; None when it had been applied before (a redelivery)."""
        return self.apply_many([batch])[0]

    def apply_many(self, batches: list[RowBatch]) -> list[Applied | None]:
        """Apply `batches` in order, in one transaction: all of them or none. One result per
        batch, None for a batch applied before (a redelivery).

        Fewer, larger transactions are much cheaper on SQLite: a commit writes every page the
        transaction touched to the WAL, and rows spread over the activity table's indexes touch
        most of their pages whatever the batch size (10,000-row transactions: ~37k rows/s;
        50,000: ~50k rows/s). Several workers on PostgreSQL should apply one batch per
        transaction (`Worker` does), so that each transaction takes its row locks in key order.
        """
        results: list[Applied | None] = []
        with _gc_paused(), self.engine.begin() as conn:
            tx = _Transaction()
            for batch in batches:
                results.append(self._apply_one(conn, batch, tx))
        # Only ids that are committed may be shared through the cache.
        for result in results:
            for dimension, ids in (result.new_ids.items() if result else ()):
                self.cache.remember(dimension, ids)
        return results

    def _apply_one(self, conn: Connection, batch: RowBatch, tx: _Transaction) -> Applied | None:
        self._ensure_run(conn, batch.ingest_id, batch.mode, batch.fetch_started_at)
        if self._sqlite and tx.stamp is None:
            # The write lock is ours from the statement above until the commit.
            # The format is the columns' default (db.py), so stamps compare as text.
            tx.stamp = conn.exec_driver_sql(
                "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')").scalar_one()
        done = conn.execute(select(_APPLIED.c.seq).where(
            _APPLIED.c.ingest_id == batch.ingest_id, _APPLIED.c.seq == batch.seq)).first()
        if done:
            return None
        result = self._apply_rows(conn, batch, tx)
        conn.execute(_APPLIED.insert().values(
            ingest_id=batch.ingest_id, seq=batch.seq, rows=result.rows,
            written=result.written))
        conn.execute(update(_RUN).where(_RUN.c.id == batch.ingest_id).values(
            batches_applied=_RUN.c.batches_applied + 1,
            rows_applied=_RUN.c.rows_applied + result.rows,
            rows_written=_RUN.c.rows_written + result.rows_written))
        expected, applied = conn.execute(select(
            _RUN.c.batches_expected, _RUN.c.batches_applied).where(
            _RUN.c.id == batch.ingest_id)).one()
        result.all_in = expected is not None and applied >= expected
        return result

    def record_end(self, end: EndOfIngest) -> None:
        with self.engine.begin() as conn:
            self._ensure_run(conn, end.ingest_id, end.mode, end.fetch_started_at)
            conn.execute(update(_RUN).where(_RUN.c.id == end.ingest_id).values(
                source=end.source, batches_expected=end.batches, rows_total=end.rows_total,
                rows_published=end.rows_published, rows_rejected=end.rows_rejected))

    # -- steps ----------------------------------------------------------------------------

    def _ensure_run(self, conn: Connection, ingest_id: str, mode: Mode, t0: float) -> None:
        stmt = self._insert(_RUN).values(id=ingest_id, mode=mode.value, fetch_started_at=t0)
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))

    def _apply_rows(self, conn: Connection, batch: RowBatch, tx: _Transaction) -> Applied:
        rows = batch.rows
        result = Applied(batch.ingest_id, batch.seq, rows.num_rows)
        # Dimension values → ids, as columns: the per-row work stays in Arrow and NumPy.
        ids = {d: _ids(rows.column(c), self._resolve(conn, d, rows.column(c), result, tx))
               for d, c in DIMENSION_COLUMNS.items()}

        # Molecules and targets: one row per key, the last occurrence winning, in key order.
        last_molecule = _last_per_key(rows.column("molecule_id"))
        m = rows.take(last_molecule)
        molecules = _tuples(m.column("molecule_id"), m.column("molecule_name"),
                            ids["phase"].take(last_molecule), m.column("molecule_structure"),
                            m.column("molecule_inchi_key"), ends=tx.stamps)
        last_target = _last_per_key(rows.column("target_id"))
        t = rows.take(last_target)
        targets = _tuples(t.column("target_id"), t.column("target_name"),
                          ids["organism"].take(last_target), ends=tx.stamps)
        result.written["molecule"] = self._execute_many(
            conn, _MOLECULE, batch.mode, ("id", "name", "phase_id", "structure", "inchi_key"),
            _not_written(molecules, tx.written["molecule"]), tx)
        result.written["target"] = self._execute_many(
            conn, _TARGET, batch.mode, ("id", "name", "organism_id"),
            _not_written(targets, tx.written["target"]), tx)
        order = _key_order(rows.column("activity_id"))
        a = rows if order is None else rows.take(order)
        if order is not None:
            ids = {d: col.take(order) for d, col in ids.items()}
        activities = _tuples(a.column("activity_id"), a.column("molecule_id"),
                             a.column("target_id"), ids["activity_type"], ids["unit"],
                             ids["relation"], a.column("activity_value"), ends=tx.stamps)
        mode: Mode | str = batch.mode
        if self._sqlite and _distinct(activities) and conn.execute(
                select(_ACTIVITY.c.id).where(_ACTIVITY.c.id.between(
                    activities[0][0], activities[-1][0])).limit(1)).first() is None:
            # None of these activities exists (the usual case: new rows, ids in order), and
            # none can appear before the commit (the write lock is ours): a plain INSERT, which
            # SQLite runs without the statement journal an upsert needs (~35% faster).
            mode = "new-rows"
        result.written["activity"] = self._execute_many(
            conn, _ACTIVITY, mode,
            ("id", "molecule_id", "target_id", "activity_type_id", "unit_id", "relation_id",
             "value"), activities, tx)
        return result

    def _resolve(self, conn: Connection, dimension: str, column: pa.ChunkedArray,
                 result: Applied, tx: _Transaction) -> dict:
        values = [v for v in column.unique().to_pylist() if v is not None]
        found = self.cache.lookup(dimension, values)
        missing = [v for v in values if v not in found]
        if missing:
            table = DIMENSIONS[dimension]
            result.written[dimension] = self._execute_many(
                conn, table, "new-values", ("value",),
                [(v, *tx.stamps) for v in sorted(missing)], tx)
            new = dict(conn.execute(
                select(table.c.value, table.c.id).where(table.c.value.in_(missing))).all())
            found.update(new)
            result.new_ids[dimension] = new
        return found

    def _execute_many(self, conn: Connection, table: Table, mode: Mode | str,
                      columns: tuple[str, ...], rows: list[tuple], tx: _Transaction) -> int:
        """`rows` hold the values of `columns`, then `tx.stamps`."""
        if not rows:
            return 0
        if tx.stamp is not None:
            # On SQLite the timestamps are given, one for the transaction: the columns'
            # default, strftime(...) evaluated twice per row, took ~30% of an insert.
            columns = (*columns, *_STAMPS)
        sql, order = self._statement(table, mode, columns)
        if order is None:  # named parameters (psycopg)
            params = [dict(zip(columns, r, strict=True)) for r in rows]
        else:
            params = rows if order == columns else [
                tuple(r[columns.index(c)] for c in order) for r in rows]
        # The statement is built with SQLAlchemy Core and compiled once per table and mode;
        # rows go straight to the driver's executemany, skipping per-row parameter processing
        # that otherwise costs as much as SQLite's own work.
        return conn.exec_driver_sql(sql, params).rowcount

    def _statement(self, table: Table, mode: Mode | str, columns: tuple[str, ...]
                   ) -> tuple[str, tuple[str, ...] | None]:
        key = (table.name, mode, columns)
        if key not in self._statements:
            stmt = self._insert(table)
            if mode == "new-values":  # dimension values: the unique value is the key
                stmt = stmt.on_conflict_do_nothing(index_elements=["value"])
            elif mode == "new-rows":  # known not to exist
                pass
            elif mode is Mode.INSERT_ONLY:
                stmt = stmt.on_conflict_do_nothing(index_elements=["id"])
            else:
                updated = [c for c in columns if c not in ("id", *_STAMPS)]
                stmt = stmt.on_conflict_do_update(
                    index_elements=["id"],
                    set_={c: stmt.excluded[c] for c in updated},
                    where=or_(*[table.c[c].is_distinct_from(stmt.excluded[c]) for c in updated]),
                )
            compiled = stmt.compile(dialect=self.engine.dialect, column_keys=list(columns))
            order = tuple(compiled.positiontup) if compiled.positional else None
            self._statements[key] = (str(compiled), order)
        return self._statements[key]


# Arrow ⇄ NumPy by hand: pyarrow's own to_numpy(), pa.array() and take(ndarray) import pandas
# (~45 MB of the worker's memory), which the worker otherwise never needs.


def _int64s(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An int64 column without nulls as a NumPy array."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return np.frombuffer(array.buffers()[1], dtype=np.int64, count=len(array),
                         offset=array.offset * 8)


def _arrow(values: np.ndarray) -> pa.Array:
    values = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def _ids(column: pa.ChunkedArray, mapping: dict) -> pa.ChunkedArray:
    """The id of each value of `column` (null stays null)."""
    values = column.unique().drop_null()
    ids = _arrow(np.array([mapping[v] for v in values.to_pylist()], dtype=np.int64))
    return pc.take(ids, pc.index_in(column, value_set=values))


def _last_per_key(column: pa.ChunkedArray) -> pa.Array:
    """Row positions of the last occurrence of each key, in key order."""
    keys = _int64s(column)
    _, first_from_end = np.unique(keys[::-1], return_index=True)
    return _arrow(len(keys) - 1 - first_from_end)


def _key_order(column: pa.ChunkedArray) -> pa.Array | None:
    """Row positions in key order; None when the rows already are (the usual case)."""
    keys = _int64s(column)
    if len(keys) < 2 or bool(np.all(keys[1:] >= keys[:-1])):
        return None
    return _arrow(np.argsort(keys, kind="stable"))


def _tuples(*columns: pa.Array | pa.ChunkedArray, ends: tuple = ()) -> list[tuple]:
    """Rows as tuples of Python values (what the driver's executemany binds), each ending with
    the values `ends` (the same for every row)."""
    values = [_pylist(c) for c in columns]
    values += [[v] * len(values[0]) for v in ends]
    return list(zip(*values, strict=True))


def _pylist(column: pa.Array | pa.ChunkedArray) -> list:
    if column.null_count == 0 and column.type == pa.int64():
        return _int64s(column).tolist()  # several times faster than to_pylist
    return column.to_pylist()


def _distinct(rows: list[tuple]) -> bool:
    """Rows in key order with no key twice (the fetcher drops repeats; a batch from elsewhere
    with one must still go through the upsert, not fail the plain INSERT)."""
    return bool(rows) and all(a[0] < b[0] for a, b in zip(rows, rows[1:], strict=False))


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


def _not_written(rows: list[tuple], written: dict[int, tuple]) -> list[tuple]:
    fresh = [r for r in rows if written.get(r[0]) != r]
    written.update((r[0], r) for r in fresh)
    return fresh


def finish_if_complete(engine: Engine, ingest_id: str) -> bool:
    """Mark the ingest completed when every expected batch is in; True for the one caller that
    made the change (so exactly one worker writes the report, even with several workers)."""
    with engine.begin() as conn:
        changed = conn.execute(update(_RUN).where(and_(
            _RUN.c.id == ingest_id, _RUN.c.status == "running",
            _RUN.c.batches_expected.is_not(None),
            _RUN.c.batches_applied >= _RUN.c.batches_expected,
        )).values(status="completed", finished_on=utcnow())).rowcount
    return changed == 1
