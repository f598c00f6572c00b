"""PostgreSQL's way to write a batch's molecules, targets and activities: COPY, then one merge.

Rows are COPY'd as CSV that Arrow writes from the batch's columns (no Python object per row).
Activities the table does not hold yet go straight into their table (which ones: decided per
id, one index probe per batch, by molstream.writes, whatever the file's row order). Everything
else goes to a temporary staging table of the connection, then one `INSERT … SELECT
… ON CONFLICT (id)` proposes only the staged rows that are new or differ from what the table
holds (a plain read: no lock on a row that does not change). Rows proposed are inserted or, if
a concurrent worker inserted them meanwhile, updated where a value differs: the same result as
the executemany of the SQLite path, a statement instead of one per row, and locks held only on
rows that change. `ON CONFLICT DO UPDATE` alone would lock every conflicting row, changed or
not, until the transaction ends.

The staging tables (`TEMPORARY`, `ON COMMIT DELETE ROWS`) are created when the pool opens a
connection, and again, if missing, by the transaction that uses them (`IF NOT EXISTS`: a look-up
in the catalog): through a pooler in transaction mode (PgBouncer) a connection's transactions
run in whichever server session is free, and a session that has them keeps them. They have the
data columns of their table and no constraint: the table's own constraints judge the rows when
they are merged, and a refused value is found as on SQLite (the batch in halves, each in a
savepoint).
"""

from __future__ import annotations

import weakref

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import Column, Engine, MetaData, Table, event, or_, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateTable

from .config import Mode
from .db import Activity, Molecule, Target
from .inserts import PROVENANCE
from .rows import arrow, int64s

STAMPS = ("created_on", "last_modified_on")
MERGED = {t.__table__.name: t.__table__ for t in (Molecule, Target, Activity)}

_STAGES = MetaData()
STAGE = {
    name: Table(f"molstream_stage_{name}", _STAGES,
                *[Column(c.name, c.type) for c in table.columns if c.name not in STAMPS],
                prefixes=["TEMPORARY"], postgresql_on_commit="DELETE ROWS")
    for name, table in MERGED.items()
}
_STAGE_DDL = {name: str(CreateTable(t, if_not_exists=True).compile(dialect=postgresql.dialect()))
              for name, t in STAGE.items()}


_installed: weakref.WeakSet[Engine] = weakref.WeakSet()


def install(engine: Engine) -> None:
    """Create the staging tables in every connection `engine` opens from now on (the pool's
    idle connections, opened before, are closed). Only the worker's engine (its Applier):
    readers such as `molstream report` may hold a read-only session."""
    if engine in _installed:
        return

    @event.listens_for(engine, "connect")
    def _stages(dbapi_connection, _record) -> None:
        with dbapi_connection.cursor() as cursor:
            for statement in _STAGE_DDL.values():
                cursor.execute(statement)
        dbapi_connection.commit()

    engine.dispose()
    _installed.add(engine)


_statements: dict[tuple, str] = {}


def _merge_sql(engine: Engine, table: Table, mode: Mode, columns: tuple[str, ...]) -> str:
    key = (table.name, mode, columns)
    if key not in _statements:
        stage = STAGE[table.name]
        have = table.alias("have")
        updated = [c for c in columns if c != "id"]
        compared = [c for c in updated if c not in PROVENANCE]
        proposed = (select(*[stage.c[c] for c in columns])
                    .select_from(stage.outerjoin(have, have.c.id == stage.c.id))
                    .order_by(stage.c.id))  # rows locked in key order by every worker
        if mode is Mode.INSERT_ONLY or not compared:
            proposed = proposed.where(have.c.id.is_(None))
        else:
            proposed = proposed.where(or_(have.c.id.is_(None), *[
                have.c[c].is_distinct_from(stage.c[c]) for c in compared]))
        stmt = postgresql.insert(table).from_select(list(columns), proposed)
        if mode is Mode.INSERT_ONLY or not compared:
            stmt = stmt.on_conflict_do_nothing(index_elements=["id"])
        else:  # inserted by another worker since the read above
            stmt = stmt.on_conflict_do_update(
                index_elements=["id"], set_={c: stmt.excluded[c] for c in updated},
                where=or_(*[table.c[c].is_distinct_from(stmt.excluded[c]) for c in compared]))
        sql = str(stmt.compile(dialect=engine.dialect))
        if mode is Mode.MIRROR:  # rows written, and how many of them were inserted
            sql = (f"WITH w AS ({sql} RETURNING (xmax = 0) AS inserted) "  # noqa: S608
                   "SELECT count(*), count(*) FILTER (WHERE inserted) FROM w")
        _statements[key] = sql
    return _statements[key]


def merge(conn: Connection, table: Table, mode: Mode, columns: tuple[str, ...],
          values: list[pa.Array | pa.ChunkedArray], *, new: bool = False
          ) -> tuple[int, int | None]:
    """Write the rows whose `columns` hold `values` (Arrow arrays, `id` first, rows in id
    order) to `table`; the number of rows inserted or changed, and of those inserted (known in
    mirror mode, or when all are new; None otherwise). `new`: none of their ids was in
    the table when the caller looked (molstream.writes), and none is there twice, so they are COPY'd
    into it straight away, in a savepoint: a plain COPY runs ~4× faster than staging and
    merging. Should another transaction have inserted one of them since (an overlapping file
    applied beside this one), the savepoint is rolled back and the rows merged as usual."""
    rows = pa.table(values, names=list(columns))
    if new and copy_new(conn, table, rows):
        return rows.num_rows, rows.num_rows
    keys = int64s(rows.column(0))
    if len(keys) > 1 and not bool(np.all(keys[1:] > keys[:-1])):
        # A batch from another producer may repeat an id. As on SQLite: an upsert's last row
        # wins, an insert's first (the rows are in a stable id order).
        if mode.upserts:
            _, from_end = np.unique(keys[::-1], return_index=True)
            rows = rows.take(arrow(len(keys) - 1 - from_end))
        else:
            rows = rows.take(arrow(np.unique(keys, return_index=True)[1]))
    stage = STAGE[table.name].name
    conn.exec_driver_sql(_STAGE_DDL[table.name])  # (this server session may not have it)
    # Empty unless a savepoint's earlier part of the batch left rows (a commit empties it).
    conn.exec_driver_sql(f"DELETE FROM {stage}")  # noqa: S608 - our own table's name
    _copy(conn, stage, rows)
    result = conn.exec_driver_sql(_merge_sql(conn.engine, table, mode, columns))
    if mode is Mode.MIRROR:
        written, inserted = result.one()
        return written, inserted
    return result.rowcount, None


def copy_new(conn: Connection, table: Table, rows: pa.Table) -> bool:
    """COPY `rows` (ids none of which is there twice) straight into `table`, in a savepoint;
    False, and nothing written, when one of their ids is in the table already."""
    import psycopg

    savepoint = conn.begin_nested()
    try:
        _copy(conn, table.name, rows)
    except DBAPIError as e:
        savepoint.rollback()
        if not isinstance(e.orig, psycopg.errors.UniqueViolation):
            raise
        return False
    savepoint.commit()
    return True


_CSV = pa_csv.WriteOptions(include_header=False, quoting_style="needed")


def _copy(conn: Connection, table: str, rows: pa.Table) -> None:
    """COPY `rows` into `table` as CSV written by Arrow: no Python object per row or value.
    Arrow's CSV is PostgreSQL's: text always quoted (so an empty string stays one), NULL an
    unquoted empty field, floats in their shortest form that reads back the same number."""
    import psycopg

    copy_sql = f"COPY {table} ({', '.join(rows.column_names)}) FROM STDIN (FORMAT csv)"
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(rows, sink, _CSV)
    try:
        with conn.connection.driver_connection.cursor() as cursor, cursor.copy(copy_sql) as copy:
            copy.write(memoryview(sink.getvalue()))
    except psycopg.Error as e:  # as SQLAlchemy wraps what it executes (molstream.dberrors)
        raise DBAPIError(copy_sql, None, e) from e
