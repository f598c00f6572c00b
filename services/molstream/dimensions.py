"""A batch's dimension values (activity type, unit, relation, organism, phase) as ids.

Ids come from the cache (molstream.cache) when it knows them, and are then read back from their
table in the batch's own transaction, one query per dimension: a cache is only as good as the
database it remembers. A restore from a backup (same instance id), a value deleted and made
again, or a wrong entry in Redis all leave ids that mean another value now, or nothing; those
entries are forgotten (here and in Redis) and their values looked up again. Values the table
lacks are inserted (`ON CONFLICT DO NOTHING`, sorted, so that workers lock them in one order)
and read back.
"""

from __future__ import annotations

import functools
import logging

import pyarrow as pa
from sqlalchemy import Integer, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from .applied import Applied, Transaction
from .cache import IdCache
from .db import DIMENSIONS
from .inserts import Inserts

log = logging.getLogger(__name__)

# CSV column feeding each dimension table.
DIMENSION_COLUMNS = {
    "phase": "molecule_max_phase",
    "activity_type": "activity_type",
    "unit": "activity_units",
    "relation": "activity_relation",
    "organism": "target_organism",
}


@functools.cache
def _held_statement(dimension: str, postgresql: bool):
    table = DIMENSIONS[dimension]
    if postgresql:  # one array parameter: the statement is the same whatever the count
        ids = bindparam("ids", type_=ARRAY(Integer))
        return select(table.c.id, table.c.value).where(table.c.id == any_(ids))
    return select(table.c.id, table.c.value).where(
        table.c.id.in_(bindparam("ids", expanding=True)))


def _held(conn: Connection, dimension: str):
    """The statement that reads back the rows of `dimension` whose ids it is given."""
    return _held_statement(dimension, conn.dialect.name == "postgresql")


def resolve(conn: Connection, inserts: Inserts, cache: IdCache, dimension: str,
            column: pa.ChunkedArray, result: Applied, tx: Transaction) -> dict:
    """Each value of `column` → its id in `dimension`'s table, as this transaction sees it.
    Ids new to the cache go to `result.new_ids` (remembered once the transaction commits);
    values inserted are counted in `result.written`."""
    table = DIMENSIONS[dimension]
    values = [v for v in column.unique().to_pylist() if v is not None]
    found = cache.lookup(dimension, values)
    verified = tx.verified.setdefault(dimension, {})
    unverified = {v: i for v, i in found.items() if verified.get(v) != i}
    if unverified:
        held = dict(conn.execute(_held(conn, dimension),
                                 {"ids": sorted(set(unverified.values()))}).all())
        stale = [v for v, i in unverified.items() if i not in held or held[i] != v]
        if stale:
            log.warning("%s: %d cached id(s) no longer mean their value in the database "
                        "(restored from a backup? values deleted?): looked up again",
                        dimension, len(stale))
            cache.forget(dimension, stale)
            for v in stale:
                del found[v]
        verified.update((v, i) for v, i in unverified.items() if v in found)
    missing = [v for v in values if v not in found]
    if missing:
        # Counted by the transaction that writes them: the batch's, or on PostgreSQL its
        # first step's (applied_part).
        result.written[dimension] += inserts.execute_many(
            conn, table, "new-values", ("value",),
            [(v, *tx.stamps) for v in sorted(missing)], stamped=tx.stamp is not None)
        new = dict(conn.execute(
            select(table.c.value, table.c.id).where(table.c.value.in_(missing))).all())
        found.update(new)
        verified.update(new)
        result.new_ids.setdefault(dimension, {}).update(new)
    return found
