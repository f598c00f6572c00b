"""New activities of a large SQLite ingest that arrive out of id order: held apart, then
inserted into the activity table in id order, once.

SQLite stores activities in their id's B-tree. New ids out of order land all over it, so each
transaction dirties most of the table's leaf pages and writes every one of them to the WAL at
its commit: the cost of a batch grows with the table (4M shuffled rows into a bare table: 48 s,
against 9 s in id order, and slower with every million). Appended to tables of their own in
arrival order and inserted in id order at the end (one sort each), the same rows took 16 s.

Only in a bulk ingest (`apply.Applier.plan`: the activity table's secondary indexes deferred),
and only for rows known new (`writes.held_ids`) whose id is below the largest the table holds:
those above it are appended to the table directly, as a file in id order is.

Held rows go to one table per range of 2^21 ids, each merged in a transaction of its own and
then dropped, its pages reused by the next: the database needs about the room the rows take
once, and the WAL about one range's, not the whole file's. Until merged, held rows are not in
the activity table. They are merged before their ingest is completed or failed
(`completion.Completion.settle`: before a mirror compares releases and the report counts), and
before the deferred indexes are built.
"""

from __future__ import annotations

import re

import numpy as np
from sqlalchemy import (
    Column,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    Table,
    Text,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.engine import Connection

from .db import Activity
from .inserts import STAMPS, Inserts

PREFIX = "activity_pending_"
BUCKET_BITS = 21  # ids per held table: ChEMBL's ~25M ids in ~12 tables
# The activity columns a batch may write (molstream.writes) and the two stamps; a column a
# batch lacks is NULL, as it is in a new row inserted directly.
COLUMNS = ("id", "molecule_id", "target_id", "activity_type_id", "unit_id", "relation_id",
           "value", "written_by", *STAMPS)
_TYPES = {"value": Float, "created_on": Text, "last_modified_on": Text}
_ACTIVITY = Activity.__table__
_NAME = re.compile(rf"{PREFIX}(\d+)")
_META = MetaData()


def _table(name: str) -> Table:
    """A table of held rows: no key (rows are appended), but the activity table's NOT NULLs
    and references, so that a row the table would refuse is refused as it is held (and
    rejected with the database's reason, molstream.apply), and a value a held row refers to
    cannot be deleted before the row is merged."""
    if name not in _META.tables:
        Table(name, _META, *(
            Column(c, _TYPES.get(c, Integer),
                   *(ForeignKey(fk.column) for fk in _ACTIVITY.c[c].foreign_keys),
                   nullable=_ACTIVITY.c[c].nullable)
            for c in COLUMNS))
    return _META.tables[name]


def split(conn: Connection, keys: np.ndarray) -> int:
    """How many of `keys` (ascending, none in the table) are below the largest id the activity
    table holds: those are held; the rest are appended."""
    tail = conn.execute(select(func.max(_ACTIVITY.c.id))).scalar()
    return 0 if tail is None else int(np.searchsorted(keys, tail, side="right"))


def hold(conn: Connection, inserts: Inserts, columns: tuple[str, ...], rows: list[tuple],
         keys: np.ndarray) -> int:
    """Hold `rows` (values of `columns`, then the two stamps; ids `keys`, ascending) until
    they are merged."""
    if not rows:
        return 0
    unknown = set(columns) - set(COLUMNS)
    if unknown:  # a column added to the activity table must be added here too
        raise ValueError(f"held activities have no column {', '.join(sorted(unknown))}")
    buckets = keys >> BUCKET_BITS
    starts = [0, *(np.flatnonzero(buckets[1:] != buckets[:-1]) + 1).tolist(), len(rows)]
    for start, end in zip(starts[:-1], starts[1:], strict=True):
        table = _table(f"{PREFIX}{int(buckets[start])}")
        table.create(conn, checkfirst=True)
        inserts.execute_many(conn, table, "new-rows", columns, rows[start:end], stamped=True)
    return len(rows)


def tables(conn: Connection) -> list[str]:
    """The tables of held rows, in id order (none on PostgreSQL, which holds none: it
    appends a row wherever its id falls)."""
    if conn.dialect.name != "sqlite":
        return []
    names = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table' "
                                 "AND name LIKE ?", (f"{PREFIX}%",)).scalars()
    return sorted((n for n in names if _NAME.fullmatch(n)), key=lambda n: int(n[len(PREFIX):]))


def held(conn: Connection) -> int:
    """Rows held, not yet in the activity table."""
    return sum(conn.execute(select(func.count()).select_from(_table(t))).scalar_one()
               for t in tables(conn))


def merge(conn: Connection) -> int:
    """Insert the held rows into the activity table in id order, in `conn`'s transaction, and
    drop their tables; the rows inserted. An id inserted meanwhile by another ingest (held ones
    were new when held) keeps that later value; an id held twice, the later."""
    return sum(_merge(conn, _table(name)) for name in tables(conn))


def merge_each(engine: Engine) -> int:
    """`merge`, one held table per transaction (the WAL holds one range's pages at a time)."""
    with engine.connect() as conn:
        names = tables(conn)
    merged = 0
    for name in names:
        with engine.execution_options(write_lock=True).begin() as conn:
            merged += _merge(conn, _table(name))
    return merged


def _merge(conn: Connection, table: Table) -> int:
    rows = select(*(table.c[c] for c in COLUMNS)).where(true()).order_by(
        table.c.id, literal_column("rowid").desc())  # (WHERE: SQLite's parser needs one here)
    inserted = conn.execute(insert(_ACTIVITY).from_select(list(COLUMNS), rows)
                            .on_conflict_do_nothing(index_elements=["id"])).rowcount
    table.drop(conn)
    return inserted
