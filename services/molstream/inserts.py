"""Rows written through the driver's `executemany`: SQLite's molecules, targets and activities,
and new dimension values on both databases (PostgreSQL's larger writes are COPYs:
molstream.pgmerge).

Each statement is built with SQLAlchemy Core and compiled once per table, mode and columns;
rows go straight to the driver, skipping per-row parameter processing that otherwise costs as
much as SQLite's own work.
"""

from __future__ import annotations

from sqlalchemy import Engine, Table, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from .config import Mode

STAMPS = ("created_on", "last_modified_on")
# Written with a row's values, never compared: a row whose values are the same is not written
# again just to say which ingest brought it last.
PROVENANCE = ("written_by",)


class Inserts:
    def __init__(self, engine: Engine) -> None:
        self.dialect = engine.dialect
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._statements: dict[tuple, tuple[str, tuple[str, ...] | None]] = {}

    def execute_many(self, conn: Connection, table: Table, mode: Mode | str,
                     columns: tuple[str, ...], rows: list[tuple], *, stamped: bool) -> int:
        """Write `rows`, which hold the values of `columns` (then, when `stamped`, the two
        timestamps); the number of rows written. `mode`: a `Mode` (an upsert that changes only
        what differs, or insert-only), "new-rows" (known not to exist: a plain INSERT),
        "insert-new" (those that do not exist: what a mirror counts as inserted) or
        "new-values" (dimension values, whose unique value is the key)."""
        if not rows:
            return 0
        if stamped:
            # On SQLite the timestamps are given, one for the transaction: the columns'
            # default, strftime(...) evaluated twice per row, took ~30% of an insert.
            columns = (*columns, *STAMPS)
        sql, order = self._statement(table, mode, columns)
        if order is None:  # named parameters (psycopg)
            params = [dict(zip(columns, r, strict=True)) for r in rows]
        else:
            params = rows if order == columns else [
                tuple(r[columns.index(c)] for c in order) for r in rows]
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
            elif mode is Mode.INSERT_ONLY or mode == "insert-new" or not (
                    compared := [c for c in columns if c not in ("id", *STAMPS, *PROVENANCE)]):
                # (or the file has none of the table's optional columns: nothing to update)
                stmt = stmt.on_conflict_do_nothing(index_elements=["id"])
            else:  # provenance follows a change, and is no change by itself
                updated = [c for c in columns if c not in ("id", *STAMPS)]
                stmt = stmt.on_conflict_do_update(
                    index_elements=["id"],
                    set_={c: stmt.excluded[c] for c in updated},
                    where=or_(*[table.c[c].is_distinct_from(stmt.excluded[c])
                                for c in compared]),
                )
            compiled = stmt.compile(dialect=self.dialect, column_keys=list(columns))
            order = tuple(compiled.positiontup) if compiled.positional else None
            self._statements[key] = (str(compiled), order)
        return self._statements[key]
