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


# -- a foreign key's equal above READ COMMITTED, and whatever the session's search_path ---------

PARENTS = tuple(parent for _, parent in REFERENCES)


@pytest.mark.parametrize("level", [psycopg.IsolationLevel.REPEATABLE_READ,
                                   psycopg.IsolationLevel.SERIALIZABLE])
def test_above_read_committed_a_parent_delete_is_refused_not_left_an_orphan(dsn, level):
    """The transaction's snapshot predates an activity committed since: the triggers cannot
    see it (a foreign key's own check can), so they refuse, saying why."""
    with psycopg.connect(dsn) as late:
        late.isolation_level = level
        late.execute("SELECT count(*) FROM activity")  # the snapshot
        with psycopg.connect(dsn, autocommit=True) as other:
            other.execute(INSERT, (2, 2, 2, 1, 1, 1))  # refers to molecule 2, committed after
        with pytest.raises(psycopg.errors.SerializationFailure) as raised:
            late.execute("DELETE FROM molecule WHERE id = 2")
        assert "READ COMMITTED" in raised.value.diag.message_hint
        late.rollback()
        for table in PARENTS:
            for sql in (f"DELETE FROM {table} WHERE id = 1", f"UPDATE {table} SET id = 8 "  # noqa: S608
                        "WHERE id = 1", f"TRUNCATE {table}"):
                with pytest.raises(psycopg.errors.SerializationFailure):
                    late.execute(sql)
                late.rollback()
        late.execute("UPDATE molecule SET name = 'kept' WHERE id = 2")  # not the id: free
        late.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM activity a JOIN molecule m "
                            "ON m.id = a.molecule_id").fetchone() == (2,)


def test_a_server_whose_default_isolation_is_higher_refuses_too(dsn):
    database = make_url(dsn).database
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database}" SET default_transaction_isolation '
                     "= 'repeatable read'")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.SerializationFailure):
                conn.execute("DELETE FROM molecule WHERE id = 2")
            conn.execute("SET default_transaction_isolation = 'read committed'")
            conn.execute("DELETE FROM molecule WHERE id = 2")  # unreferenced: goes
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{database}" RESET default_transaction_isolation')


def test_a_session_s_temporary_tables_never_stand_in_for_molstream_s(dsn):
    """An analyst's session made temporary tables named like every parent (each holding id 9)
    and like activity (empty): the checks still read molstream's own tables."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in PARENTS:
            conn.execute(f"CREATE TEMP TABLE {table} (id bigint)")
            conn.execute(f"INSERT INTO {table} VALUES (9)")  # noqa: S608
        conn.execute("CREATE TEMP TABLE activity (id bigint, molecule_id bigint, target_id "
                     "bigint, activity_type_id bigint, unit_id bigint, relation_id bigint)")
        for column, _ in REFERENCES:
            sql = f"UPDATE public.activity SET {column} = 9 WHERE id = 1"  # noqa: S608
            e = _refused(conn, sql)
            assert f"{column} = 9 is not present" in e.diag.message_primary
        for table in PARENTS:
            _refused(conn, f"DELETE FROM public.{table} WHERE id = 1")  # noqa: S608
            _refused(conn, f"TRUNCATE public.{table}")


def test_a_second_schema_is_checked_against_its_own_tables(dsn):
    """Two molstream databases in two schemas of one PostgreSQL database: each activity table
    is checked against its own schema's parents, whatever the schema's name."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA "Other_Schema"')
    engine = make_engine(make_url(dsn).update_query_dict(  # (beside the URL's sslmode)
        {"options": '-csearch_path="Other_Schema"'}).render_as_string(hide_password=False))
    try:
        create_schema(engine)
        with psycopg.connect(dsn, autocommit=True) as conn:
            # molecule 1 exists in public only
            e = _refused(conn, 'INSERT INTO "Other_Schema".activity (id, molecule_id, target_id, '
                         'activity_type_id) VALUES (1, 1, 1, 1)')
            assert "is not present" in e.diag.message_primary
            conn.execute("""INSERT INTO "Other_Schema".activity_type (id, value)
                            VALUES (1, 'Ki')""")
            conn.execute('INSERT INTO "Other_Schema".molecule (id) VALUES (1)')
            conn.execute("""INSERT INTO "Other_Schema".target (id, name) VALUES (1, 't')""")
            conn.execute('INSERT INTO "Other_Schema".activity (id, molecule_id, target_id, '
                         'activity_type_id) VALUES (1, 1, 1, 1)')
            _refused(conn, 'DELETE FROM "Other_Schema".molecule WHERE id = 1')
            conn.execute("DELETE FROM public.molecule WHERE id = 2")  # public's own rule
            _refused(conn, "DELETE FROM public.molecule WHERE id = 1")
            # a trigger disabled there is found (its schema's name is not folded) and enabled
            conn.execute('ALTER TABLE "Other_Schema".molecule DISABLE TRIGGER '
                         "trg_molecule_referenced")
        create_schema(engine)
        with psycopg.connect(dsn, autocommit=True) as conn:
            _refused(conn, 'DELETE FROM "Other_Schema".molecule WHERE id = 1')
    finally:
        engine.dispose()


# -- a worker's start takes no lock a reader holds up ------------------------------------------


def _start_worker_schema(dsn: str) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def start() -> None:
        engine = make_engine(dsn)
        try:
            out["instance"] = create_schema(engine)
        except Exception as e:  # noqa: BLE001 - reported by the test
            out["error"] = e
        finally:
            engine.dispose()

    thread = threading.Thread(target=start)
    thread.start()
    return thread, out


# What a hand, a restore or an older molstream may leave: a trigger gone, one disabled, a
# function altered (STABLE would let the delete guard read an old snapshot).
DRIFTS = {
    "none": [],
    "trigger dropped": ["DROP TRIGGER trg_activity_references_update ON activity"],
    "trigger disabled": ["ALTER TABLE molecule DISABLE TRIGGER trg_molecule_referenced"],
    "function altered": ["ALTER FUNCTION molstream_referenced_by_activity() STABLE"],
}


def _repaired(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        _refused(conn, "UPDATE activity SET molecule_id = 77 WHERE id = 1")
        _refused(conn, "DELETE FROM molecule WHERE id = 1")
        assert conn.execute("SELECT provolatile FROM pg_proc WHERE proname = "
                            "'molstream_referenced_by_activity'").fetchone() == ("v",)


@pytest.mark.parametrize("drift", list(DRIFTS))
def test_a_worker_starting_beside_a_long_read_waits_for_nobody(dsn, drift):
    """Up to date, its start only reads the catalog; a repair takes no lock a reader holds
    (CREATE TRIGGER lets reads through): either way, it neither waits for an analytics query
    nor makes anyone queue behind it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for sql in DRIFTS[drift]:
            conn.execute(sql)
    with psycopg.connect(dsn) as reader:  # an analytics query, its transaction still open
        reader.execute("SELECT count(*) FROM activity JOIN molecule ON true")
        thread, out = _start_worker_schema(dsn)
        thread.join(EVENT_TIMEOUT_S)
        assert not thread.is_alive() and "instance" in out, out  # started, the read still on
        with psycopg.connect(dsn, autocommit=True) as writer:  # nobody queued behind it
            writer.execute(INSERT, (2, 2, 2, 1, 1, 1))
        reader.rollback()
    _repaired(dsn)


def test_a_schema_change_behind_a_long_write_lets_go_and_tries_again(dsn, caplog):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(DRIFTS["trigger dropped"][0])
    with psycopg.connect(dsn) as writer:  # a long write transaction on activity
        writer.execute(INSERT, (2, 2, 2, 1, 1, 1))
        thread, out = _start_worker_schema(dsn)
        wait_for(lambda: "trying again" in caplog.text or not thread.is_alive(),
                 timeout_s=EVENT_TIMEOUT_S, what="the start letting go of its lock wait")
        assert thread.is_alive(), out
        writer.commit()
    thread.join(EVENT_TIMEOUT_S)
    assert "instance" in out, out
    _repaired(dsn)


def test_tables_are_found_where_the_session_finds_them_not_in_current_schema(dsn):
    """Tables made under search_path "$user", public went to public; a schema named after the
    user, made later, becomes current_schema(): the worker still starts, on public's tables."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        user = conn.execute("SELECT current_user").fetchone()[0]
        conn.execute(f'CREATE SCHEMA "{user}"')
        assert conn.execute("SELECT current_schema()").fetchone() == (user,)
        conn.execute(DRIFTS["trigger disabled"][0])
    thread, out = _start_worker_schema(dsn)
    thread.join(EVENT_TIMEOUT_S)
    assert "instance" in out, out
    _repaired(dsn)
