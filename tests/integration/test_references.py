"""On PostgreSQL the activity table's references are checked once per statement
(molstream.pgschema), not by per-row foreign keys: the same rule as a foreign key, proved here
against the real server, races with concurrent deletes included."""

from __future__ import annotations

import threading

import psycopg
import pytest
from molstream.db import Molecule, create_schema, make_engine, soft_delete
from molstream.pgschema import OLD_FOREIGN_KEYS, REFERENCES
from sqlalchemy import make_url
from waits import EVENT_TIMEOUT_S, wait_for

pytestmark = pytest.mark.postgres

INSERT = ("INSERT INTO activity (id, molecule_id, target_id, activity_type_id, unit_id,"
          " relation_id) VALUES (%s, %s, %s, %s, %s, %s)")


@pytest.fixture
def dsn(postgres_url: str):
    engine = make_engine(postgres_url)
    create_schema(engine)
    engine.dispose()
    dsn = make_url(postgres_url).set(drivername="postgresql").render_as_string(
        hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO activity_type (id, value) VALUES (1, 'Ki')")
        conn.execute("INSERT INTO unit (id, value) VALUES (1, 'nM')")
        conn.execute("INSERT INTO relation (id, value) VALUES (1, '=')")
        conn.execute("INSERT INTO molecule (id) VALUES (1), (2)")
        conn.execute("INSERT INTO target (id, name) VALUES (1, 't1'), (2, 't2')")
        conn.execute(INSERT, (1, 1, 1, 1, 1, 1))
    return dsn


def _refused(conn: psycopg.Connection, sql: str, params=()) -> psycopg.Error:
    with pytest.raises(psycopg.errors.ForeignKeyViolation) as raised:
        conn.execute(sql, params)
    return raised.value


def test_the_references_are_the_model_s_foreign_keys():
    assert dict(REFERENCES) == {"molecule_id": "molecule", "target_id": "target",
                                "activity_type_id": "activity_type", "unit_id": "unit",
                                "relation_id": "relation"}


def test_an_activity_naming_a_missing_row_is_refused_naming_the_column_and_value(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        for values, column, value in (((2, 9, 1, 1, 1, 1), "molecule_id", 9),
                                      ((2, 1, 9, 1, 1, 1), "target_id", 9),
                                      ((2, 1, 1, 9, 1, 1), "activity_type_id", 9),
                                      ((2, 1, 1, 1, 9, 1), "unit_id", 9),
                                      ((2, 1, 1, 1, 1, 9), "relation_id", 9)):
            e = _refused(conn, INSERT, values)
            assert e.diag.message_primary == (
                f'activity 2: {column} = {value} is not present in table '
                f'"{dict(REFERENCES)[column]}"')
            assert e.diag.column_name == column and e.diag.table_name == "activity"
        _refused(conn, "UPDATE activity SET target_id = 7 WHERE id = 1")
        # COPY, as the worker writes: one bad row refuses the statement, nothing lands
        with pytest.raises(psycopg.errors.ForeignKeyViolation), conn.cursor().copy(
                "COPY activity (id, molecule_id, target_id, activity_type_id) FROM STDIN"
        ) as copy:
            for i in range(2, 1000):
                copy.write_row((i, 1 if i != 500 else 77, 2, 1))
        assert conn.execute("SELECT count(*) FROM activity").fetchone() == (1,)
        # NULL unit and relation are allowed, as by a foreign key
        conn.execute(INSERT, (2, 2, 2, 1, None, None))
        conn.execute("UPDATE activity SET molecule_id = 1, unit_id = 1 WHERE id = 2")
        assert conn.execute("SELECT count(*) FROM activity").fetchone() == (2,)


def test_a_referenced_row_cannot_be_deleted_renumbered_or_truncated(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in ("molecule", "target", "activity_type", "unit", "relation"):
            e = _refused(conn, f"DELETE FROM {table} WHERE id = 1")  # noqa: S608
            assert "still referenced" in e.diag.message_primary
            _refused(conn, f"UPDATE {table} SET id = 5 WHERE id = 1")  # noqa: S608
            _refused(conn, f"TRUNCATE {table}")
        # what no activity refers to goes; an update that keeps the id is free
        conn.execute("DELETE FROM molecule WHERE id = 2")
        conn.execute("UPDATE molecule SET name = 'aspirin' WHERE id = 1")
        conn.execute("DELETE FROM activity")
        conn.execute("DELETE FROM molecule")
    engine = make_engine(dsn)
    try:
        with engine.begin() as c:  # the data layer's soft delete is an update
            c.exec_driver_sql("INSERT INTO molecule (id) VALUES (3)")
            c.exec_driver_sql("INSERT INTO activity (id, molecule_id, target_id, "
                              "activity_type_id) VALUES (3, 3, 1, 1)")
            assert soft_delete(c, Molecule.__table__, [3]) == 1
    finally:
        engine.dispose()


def _blocked(dsn: str, pid: int) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity "
                            "WHERE pid = %s", (pid,)).fetchone() == (True,)


def _in_thread(dsn: str, sql: str, params=()) -> tuple[threading.Thread, dict, int]:
    """Run `sql` on a connection of its own in a thread; its backend's pid, and what it
    raised (under "error") once the thread ends."""
    conn = psycopg.connect(dsn, autocommit=True)
    out: dict = {}

    def run() -> None:
        try:
            conn.execute(sql, params)
        except psycopg.Error as e:
            out["error"] = e
        finally:
            conn.close()

    thread = threading.Thread(target=run)
    return thread, out, conn.info.backend_pid


def test_a_delete_racing_an_uncommitted_insert_waits_then_is_refused(dsn):
    with psycopg.connect(dsn) as inserter:  # a transaction, left open
        inserter.execute(INSERT, (2, 2, 2, 1, 1, 1))
        thread, out, pid = _in_thread(dsn, "DELETE FROM molecule WHERE id = 2")
        thread.start()
        wait_for(lambda: _blocked(dsn, pid), timeout_s=EVENT_TIMEOUT_S,
                 what="the delete waiting for the inserting transaction's key-share lock")
        inserter.commit()
    thread.join(EVENT_TIMEOUT_S)
    assert isinstance(out.get("error"), psycopg.errors.ForeignKeyViolation)
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM molecule WHERE id = 2").fetchone() == (1,)


def test_an_insert_racing_an_uncommitted_delete_waits_then_is_refused(dsn):
    with psycopg.connect(dsn) as deleter:
        deleter.execute("DELETE FROM target WHERE id = 2")
        thread, out, pid = _in_thread(dsn, INSERT, (2, 1, 2, 1, 1, 1))
        thread.start()
        wait_for(lambda: _blocked(dsn, pid), timeout_s=EVENT_TIMEOUT_S,
                 what="the insert waiting for the deleting transaction")
        deleter.commit()
    thread.join(EVENT_TIMEOUT_S)
    assert isinstance(out.get("error"), psycopg.errors.ForeignKeyViolation)
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM activity").fetchone() == (1,)


def test_a_database_made_with_per_row_foreign_keys_loses_them(postgres_url):
    engine = make_engine(postgres_url)
    try:
        create_schema(engine)
        with engine.begin() as conn:  # as molstream made them before
            for (column, parent), name in zip(REFERENCES, OLD_FOREIGN_KEYS, strict=True):
                conn.exec_driver_sql(f"ALTER TABLE activity ADD CONSTRAINT {name} "
                                     f"FOREIGN KEY ({column}) REFERENCES {parent} (id)")
        create_schema(engine)
        with engine.connect() as conn:
            left = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_constraint WHERE contype = 'f' "
                "AND conrelid = 'activity'::regclass").scalar_one()
            triggers = {r[0] for r in conn.exec_driver_sql(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'activity'::regclass "
                "AND NOT tgisinternal")}
        assert left == 0
        assert {"trg_activity_references_insert", "trg_activity_references_update"} <= triggers
    finally:
        engine.dispose()
