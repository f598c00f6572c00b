"""A worker starting on an up-to-date PostgreSQL schema only reads the catalog (and
molstream_meta): it does not wait for a lock another connection holds on the tables, even
ACCESS EXCLUSIVE (a manual maintenance, a long migration of the user's own). SQLAlchemy's
reflection, which create_schema used to ask for the columns and indexes that exist, calls
pg_get_serial_sequence and pg_get_indexdef, which lock the table: the worker then looped on
"the schema needs a change and a table it locks is in use" until the lock went."""

from __future__ import annotations

import time

import pytest
from molstream import db
from sqlalchemy import text

pytestmark = [pytest.mark.postgres]


def test_an_up_to_date_schema_is_checked_while_its_tables_are_locked(postgres_url):
    engine = db.make_engine(postgres_url)
    holder_engine = db.make_engine(postgres_url)
    try:
        instance = db.create_schema(engine)
        tables = [t.name for t in db.Base.metadata.sorted_tables
                  if t.name != db.Meta.__tablename__]
        assert "activity" in tables
        with holder_engine.connect() as holder:
            holder.begin()
            holder.execute(text(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE"))
            started = time.monotonic()
            # (the attempt itself: create_schema would wait for the lock, retrying)
            assert db._create_schema(engine) == instance  # noqa: SLF001
            assert time.monotonic() - started < db.LOCK_TIMEOUT_S
            holder.rollback()
    finally:
        holder_engine.dispose()
        engine.dispose()
