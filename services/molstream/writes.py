"""Writing a batch's rows in a transaction: its dimension values as ids, its molecules and
targets, its activities; soft-deleted rows written apart (molstream.apply's docstring says
what soft delete means on re-ingest) and, in mirror mode, retired ones brought back. PostgreSQL's
rows go through COPY and a merge (molstream.pgmerge), SQLite's through executemany
(molstream.inserts)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
from sqlalchemy import Engine, Table, false, null, select
from sqlalchemy.engine import Connection

from . import mirror, pending, pgmerge
from .applied import KEYED, Applied, Transaction
from .cache import IdCache
from .config import Mode
from .db import Activity, Molecule, Target
from .dimensions import DIMENSION_COLUMNS, resolve
from .inserts import Inserts
from .messages import RowBatch
from .rows import (
    arrow,
    dimension_ids,
    int64s,
    key_order,
    last_per_key,
    not_written,
    table_values,
    tuples,
)

_MOLECULE = Molecule.__table__
_TARGET = Target.__table__
_ACTIVITY = Activity.__table__

# Each table's columns and where their values come from: a dimension's ids, or a CSV column.
# A source the batch lacks leaves its column out of the statement.
_MOLECULE_SOURCES = (("id", "molecule_id"), ("name", "molecule_name"), ("phase_id", "phase"),
                     ("structure", "molecule_structure"), ("inchi_key", "molecule_inchi_key"))
_TARGET_SOURCES = (("id", "target_id"), ("name", "target_name"), ("organism_id", "organism"))
_ACTIVITY_SOURCES = (("id", "activity_id"), ("molecule_id", "molecule_id"),
                     ("target_id", "target_id"), ("activity_type_id", "activity_type"),
                     ("unit_id", "unit"), ("relation_id", "relation"),
                     ("value", "activity_value"))


class RowWriter:
    """The statements that write a batch's rows, counted in its `Applied`."""

    def __init__(self, engine: Engine, cache: IdCache) -> None:
        self.cache = cache
        self._sqlite = engine.dialect.name == "sqlite"
        self._inserts = Inserts(engine)
        # SQLite, the bulk ingest whose new activities below the table's largest id are held
        # apart and inserted in id order at its end (molstream.pending; `Applier.plan`)
        self.holding: str | None = None

    def apply_rows(self, conn: Connection, batch: RowBatch, rows: pa.Table,
                   tx: Transaction, *, parents: bool = True) -> Applied:
        result = Applied(batch.ingest_id, batch.seq, rows.num_rows)
        if self._sqlite and batch.ingest_id != self.holding and pending.tables(conn):
            # Another ingest's batch: what the bulk one holds goes into the table first, so
            # that this batch finds, counts and overwrites (or not) those ids as it should.
            pending.merge(conn)
            self.holding = None
        ids = self.resolve_dimensions(conn, rows, result, tx)
        if parents:
            self.write_parents(conn, batch, rows, ids, result, tx)
        self.write_activities(conn, batch, rows, ids, result, tx)
        return result

    def resolve_dimensions(self, conn: Connection, rows: pa.Table, result: Applied,
                           tx: Transaction) -> dict[str, pa.Array]:
        """Dimension values → ids, as columns: the per-row work stays in Arrow and NumPy."""
        present = set(rows.column_names)
        return {d: dimension_ids(rows.column(c), resolve(conn, self._inserts, self.cache, d,
                                                         rows.column(c), result, tx))
                for d, c in DIMENSION_COLUMNS.items() if c in present}

    def write_parents(self, conn: Connection, batch: RowBatch, rows: pa.Table,
                      ids: dict[str, pa.Array], result: Applied, tx: Transaction) -> None:
        """Molecules and targets: one row per key, the last occurrence winning, in key order."""
        for table, sources, key in ((_MOLECULE, _MOLECULE_SOURCES, "molecule_id"),
                                    (_TARGET, _TARGET_SOURCES, "target_id")):
            columns, values = table_values(sources, rows, ids, last_per_key(rows.column(key)))
            self._write(conn, table, batch.mode, columns, values, result, tx)

    def write_activities(self, conn: Connection, batch: RowBatch, rows: pa.Table,
                         ids: dict[str, pa.Array], result: Applied, tx: Transaction) -> None:
        columns, values = table_values(_ACTIVITY_SOURCES, rows, ids,
                                       key_order(rows.column("activity_id")))
        keys = int64s(values[0])
        # provenance: the run that writes them (its number, db.IngestRun.number)
        columns += ("written_by",)
        values.append(arrow(np.full(len(keys), tx.runs[batch.ingest_id], dtype=np.int64)))
        # Which of them the table holds decides how each is written: the new ones by a plain
        # INSERT on SQLite, which runs without the statement journal an upsert needs (~35%
        # faster; nobody can add one before the commit: the write lock is ours, BEGIN
        # IMMEDIATE), and a plain COPY on PostgreSQL (molstream.pgmerge; it falls back to the
        # merge should another worker insert one meanwhile); only the others are upserted
        # (merged). Decided per id, whatever the file's row order (`held_ids`).
        once = np.ones(len(keys), dtype=bool)  # an id the batch holds once (another producer
        if len(keys) > 1:                      # may repeat one: merged, as before)
            same = keys[1:] == keys[:-1]
            once[1:] &= ~same
            once[:-1] &= ~same
        held = None
        if range_held(conn, keys):
            # PostgreSQL: COPY'd as new first, in a savepoint. A file out of id order brings
            # ids inside the range the table holds, and into a table being filled they are
            # new: the probe below cost as much as the COPY itself (4M shuffled rows: 20 s
            # of ~100). It is made when a few of the ids, spread over the batch, are in the
            # table (a release over the last), or when the COPY meets one.
            if not self._sqlite and once.all() and not _any_held(
                    conn, keys[::max(1, len(keys) // 8)]) and pgmerge.copy_new(
                    conn, _ACTIVITY, pa.table(values, names=list(columns))):
                result.written[_ACTIVITY.name] += len(keys)
                result.inserted += len(keys)
                return
            held = held_ids(conn, self._sqlite, keys)
        fresh = once if held is None else once & ~np.isin(keys, held, assume_unique=False)
        hold = batch.ingest_id == self.holding
        if fresh.all():
            self._write(conn, _ACTIVITY, batch.mode, columns, values, result, tx, new=True,
                        hold=hold)
        elif not fresh.any():
            self._write(conn, _ACTIVITY, batch.mode, columns, values, result, tx)
        else:  # the new ones first, then the others (each in id order)
            for part in (fresh, ~fresh):
                take = arrow(np.flatnonzero(part))
                self._write(conn, _ACTIVITY, batch.mode, columns, [v.take(take) for v in values],
                            result, tx, new=part is fresh, hold=hold)

    def _write(self, conn: Connection, table: Table, mode: Mode, columns: tuple[str, ...],
               values: list, result: Applied, tx: Transaction, *, new: bool = False,
               hold: bool = False) -> None:
        """Write the rows of `table` whose `columns` hold `values` (Arrow arrays, rows in key
        order; `new`: none is in the table, and no key is there twice), counting in `result`
        the rows written (inserted or changed): active ones, and apart the soft-deleted ones,
        which stay so, unless a mirror retired them: a file that brings them (upsert or
        mirror) makes them active again (`restored`)."""
        if len(values[0]) == 0:
            return
        held = {} if new else _soft_deleted(conn, table, int64s(values[0]))
        if held and mode.upserts and table is _ACTIVITY:  # a file that brings it back
            back = [i for i, by in held.items() if by is not None]
            if back:
                result.restored += mirror.restore_retired(conn, back)
                held = {i: by for i, by in held.items() if by is None}
        if held:  # written apart, and counted apart
            inactive = np.isin(int64s(values[0]), np.fromiter(held, dtype=np.int64))
            result.inactive[table.name] += self._write_rows(
                conn, table, mode, columns,
                [v.take(arrow(np.flatnonzero(inactive))) for v in values], tx)[0]
            values = [v.take(arrow(np.flatnonzero(~inactive))) for v in values]
        written, inserted = self._write_rows(conn, table, mode, columns, values, tx, new=new,
                                             hold=hold)
        result.written[table.name] += written
        if table is _ACTIVITY and inserted is not None:
            result.inserted += inserted

    def _write_rows(self, conn: Connection, table: Table, mode: Mode, columns: tuple[str, ...],
                    values: list, tx: Transaction, *, new: bool = False, hold: bool = False
                    ) -> tuple[int, int | None]:
        """Rows written (inserted or changed), and of them those inserted (None: not
        counted; counted in mirror mode, and when all are new). `hold`: new activities below
        the table's largest id are held (molstream.pending)."""
        if len(values[0]) == 0:
            return 0, 0
        if not self._sqlite:  # COPY (and a merge), straight from Arrow
            return pgmerge.merge(conn, table, mode, columns, values, new=new)
        rows = tuples(*values, ends=tx.stamps)
        if table.name in tx.written:  # molecules and targets this transaction wrote
            rows = not_written(rows, tx.remembered(table.name, mode))
        stamped = tx.stamp is not None
        if new:
            held = 0
            if table is _ACTIVITY and hold and stamped:
                keys = int64s(values[0])
                k = pending.split(conn, keys)
                held = pending.hold(conn, self._inserts, columns, rows[:k], keys[:k])
                rows = rows[k:]
            n = self._inserts.execute_many(conn, table, "new-rows", columns, rows, stamped=stamped)
            return n + held, n + held
        inserted = None
        if mode is Mode.MIRROR:  # the new ones first, counted; then the others' changes
            inserted = self._inserts.execute_many(conn, table, "insert-new", columns, rows,
                                                  stamped=stamped)
        written = self._inserts.execute_many(conn, table, mode, columns, rows, stamped=stamped)
        return written + (inserted or 0), inserted


def range_held(conn: Connection, keys: np.ndarray) -> bool:
    """Whether the activity table holds an id in the range of `keys` (ascending): one index
    seek. No, for a file in id order: then none of them is there."""
    return len(keys) > 0 and conn.execute(select(_ACTIVITY.c.id).where(_ACTIVITY.c.id.between(
        int(keys[0]), int(keys[-1]))).limit(1)).first() is not None


def held_ids(conn: Connection, sqlite: bool, keys: np.ndarray) -> np.ndarray | None:
    """Those of `keys` (in order) that the activity table holds, found by one index probe
    for the batch: `id = ANY(…)` on PostgreSQL, the ids as a JSON array on SQLite (no limit on
    the number of bound parameters)."""
    ids = keys.tolist()
    if sqlite:
        found = conn.exec_driver_sql(
            "SELECT id FROM activity WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(ids),)).scalars().all()
    else:
        found = conn.exec_driver_sql("SELECT id FROM activity WHERE id = ANY(%s::bigint[])",
                                     (ids,)).scalars().all()
    return np.array(found, dtype=np.int64)


def _any_held(conn: Connection, keys: np.ndarray) -> bool:
    """PostgreSQL: whether the activity table holds any of `keys` (a few)."""
    return conn.exec_driver_sql("SELECT 1 FROM activity WHERE id = ANY(%s::bigint[]) LIMIT 1",
                                (keys.tolist(),)).first() is not None


def _soft_deleted(conn: Connection, table: Table, keys: np.ndarray) -> dict[int, int | None]:
    """The soft-deleted rows of `table` among `keys` (in order), each with the mirror run
    that retired it (None: a person did); empty, the usual case. One range scan of the table's
    partial index of inactive rows (db.py): a few rows, or none."""
    if table.name not in KEYED:
        return {}
    by = table.c.retired_by if "retired_by" in table.c else null()
    found = dict(conn.execute(select(table.c.id, by).where(
        table.c.active == false(), table.c.id.between(int(keys[0]), int(keys[-1])))).all())
    if not found:
        return {}
    wanted = set(np.intersect1d(keys, np.fromiter(found, dtype=np.int64)).tolist())
    return {i: b for i, b in found.items() if i in wanted}
