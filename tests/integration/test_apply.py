"""The database layer and the applier on real SQLite and real PostgreSQL (no Kafka here)."""

import sqlite3
import threading
import time
from dataclasses import replace

import pyarrow as pa
import pytest
from batches import ROW, count, make_batch
from molstream import apply
from molstream.apply import Applier
from molstream.cache import IdCache
from molstream.completion import Completion
from molstream.config import Mode
from molstream.contract import LINE
from molstream.db import (
    DATA_TABLES,
    Activity,
    Molecule,
    create_schema,
    make_engine,
    restore,
    select_active,
    soft_delete,
    utcnow,
)
from molstream.messages import EndOfIngest, RowBatch, decode, encode_batch
from molstream.writes import RowWriter
from molstream_dev.postgres import create_database
from sqlalchemy import event, func, select, text
from waits import EVENT_TIMEOUT_S, wait_for


@pytest.fixture
def applier(engine):
    return Applier(engine, IdCache(None, namespace="test"))


def _database_now(engine):
    with engine.connect() as conn:
        return conn.execute(select(utcnow())).scalar_one()


def test_rows_land_normalized_with_foreign_keys(engine, applier):
    rows = [ROW, {**ROW, "activity_id": "2", "activity_type": "Ki", "activity_units": "",
                  "activity_relation": "", "activity_value": ""},
            {**ROW, "activity_id": "3", "molecule_id": "11", "molecule_name": "",
             "molecule_max_phase": "", "target_id": "101", "target_organism": ""}]
    result = applier.apply(make_batch(rows))
    assert result.written == {"phase": 1, "activity_type": 2, "unit": 1, "relation": 1,
                              "organism": 1, "molecule": 2, "target": 2, "activity": 3}
    with engine.connect() as conn:
        joined = conn.execute(text(
            "SELECT a.id, m.name, p.value, t.name, o.value, ty.value, u.value, r.value, a.value "
            "FROM activity a JOIN molecule m ON m.id = a.molecule_id "
            "JOIN target t ON t.id = a.target_id "
            "JOIN activity_type ty ON ty.id = a.activity_type_id "
            "LEFT JOIN phase p ON p.id = m.phase_id LEFT JOIN organism o ON o.id = t.organism_id "
            "LEFT JOIN unit u ON u.id = a.unit_id LEFT JOIN relation r ON r.id = a.relation_id "
            "ORDER BY a.id")).all()
    assert [tuple(r) for r in joined] == [
        (1, "ASPIRIN", 4.0, "COX-1", "Homo sapiens", "IC50", "nM", "=", 12.5),
        (2, "ASPIRIN", 4.0, "COX-1", "Homo sapiens", "Ki", None, None, None),
        (3, None, None, "COX-1", None, "IC50", "nM", "=", 12.5),
    ]


def test_a_redelivered_batch_changes_nothing(engine, applier):
    batch = make_batch([ROW])
    assert applier.apply(batch) is not None
    with engine.connect() as conn:
        before = conn.execute(select(Activity.__table__)).all()
    assert applier.apply(batch) is None
    with engine.connect() as conn:
        assert conn.execute(select(Activity.__table__)).all() == before


def test_insert_only_keeps_existing_rows_and_upsert_updates_in_place(engine, applier):
    applier.apply(make_batch([ROW], ingest="first"))
    changed = {**ROW, "molecule_name": "ACETYLSALICYLIC ACID", "activity_value": "99"}
    applier.apply(make_batch([changed], ingest="second", mode=Mode.INSERT_ONLY))
    with engine.connect() as conn:
        assert conn.execute(select(Molecule.__table__.c.name)).scalar_one() == "ASPIRIN"
        created, modified = conn.execute(select(Activity.__table__.c.created_on,
                                                Activity.__table__.c.last_modified_on)).one()
    # The event: the database's clock, which stamps last_modified_on, past the first write's
    # stamp (then the update's stamp must be later).
    wait_for(lambda: _database_now(engine) > modified, timeout_s=EVENT_TIMEOUT_S,
             what="the database's clock past the first write's last_modified_on", poll_s=0.001)
    result = applier.apply(make_batch([changed], ingest="third", mode=Mode.UPSERT))
    assert result.written["molecule"] == 1 and result.written["activity"] == 1
    with engine.connect() as conn:
        assert conn.execute(select(Molecule.__table__.c.name)).scalar_one() == changed[
            "molecule_name"]
        value, created2, modified2 = conn.execute(select(
            Activity.__table__.c.value, Activity.__table__.c.created_on,
            Activity.__table__.c.last_modified_on)).one()
    assert value == 99.0 and created2 == created and modified2 > modified
    assert all(count(engine, t) == 1 for t in ("molecule", "target", "activity"))
    # The same data again, upserted: nothing differs, so nothing is written or touched.
    again = applier.apply(make_batch([changed], ingest="fourth", mode=Mode.UPSERT))
    assert again.written["activity"] == 0 and again.written["molecule"] == 0


def test_a_batch_repeating_an_activity_id_keeps_the_last_one(engine, applier):
    # Our fetcher drops repeats; a batch from another producer may not, and must not fail.
    rows = [ROW, {**ROW, "activity_id": "2"}, {**ROW, "activity_value": "7"}]
    result = applier.apply(make_batch(rows))
    assert result is not None and count(engine, "activity") == 2
    with engine.connect() as conn:
        assert conn.execute(select(Activity.__table__.c.value).where(
            Activity.__table__.c.id == 1)).scalar_one() == 7.0


def test_an_insert_only_batch_repeating_an_activity_id_keeps_the_first_one(engine, applier):
    """Insert-only leaves a row as it was first written: within one batch too, on both
    databases (PostgreSQL merges the batch in one statement, SQLite inserts row by row)."""
    rows = [ROW, {**ROW, "activity_value": "7"}]
    result = applier.apply(make_batch(rows, mode=Mode.INSERT_ONLY))
    assert result is not None and count(engine, "activity") == 1
    with engine.connect() as conn:
        assert conn.execute(select(Activity.__table__.c.value).where(
            Activity.__table__.c.id == 1)).scalar_one() == float(ROW["activity_value"])


def test_batches_applied_together_equal_batches_applied_one_by_one(engine, applier, tmp_path):
    """apply_many (one transaction for several batches, as the worker does on SQLite) writes
    what applying them in turn writes: a molecule repeated unchanged is written once, one that
    changes in a later batch is updated, a batch seen before in the group changes nothing, and
    rows out of key order still land."""
    renamed = {**ROW, "activity_id": "5", "molecule_name": "RENAMED", "molecule_max_phase": "2"}
    batches = [
        make_batch([ROW, {**ROW, "activity_id": "2", "target_id": "101"}], seq=0),
        make_batch([{**ROW, "activity_id": "4"}, {**ROW, "activity_id": "3"}], seq=1),
        make_batch([renamed, {**ROW, "activity_id": "6", "molecule_id": "11"}], seq=2),
    ]
    together = applier.apply_many([*batches, batches[1]])
    assert together[3] is None  # batch 1 again, in the same transaction
    assert [r.written["molecule"] for r in together[:3]] == [1, 0, 2]
    assert [r.written["activity"] for r in together[:3]] == [2, 2, 2]
    alone = make_engine(f"sqlite:///{tmp_path / 'alone.sqlite'}")
    create_schema(alone)
    one_by_one = Applier(alone, IdCache(None, namespace="alone"))
    assert [one_by_one.apply(b).written for b in batches] == [r.written for r in together[:3]]

    def content(e):  # dimension values rather than ids: PostgreSQL's sequences skip numbers
        with e.connect() as conn:
            return [tuple(r) for r in conn.execute(text(
                "SELECT a.id, a.value, m.id, m.name, p.value, m.structure, t.id, t.name, o.value,"
                " ty.value, u.value, r.value FROM activity a "
                "JOIN molecule m ON m.id = a.molecule_id JOIN target t ON t.id = a.target_id "
                "JOIN activity_type ty ON ty.id = a.activity_type_id "
                "LEFT JOIN phase p ON p.id = m.phase_id LEFT JOIN organism o ON o.id = "
                "t.organism_id LEFT JOIN unit u ON u.id = a.unit_id "
                "LEFT JOIN relation r ON r.id = a.relation_id ORDER BY a.id"))]
    assert content(engine) == content(alone)
    assert content(engine)[0][3:5] == ("RENAMED", 2.0)
    alone.dispose()


def _activity_indexes(engine) -> set[str]:
    from sqlalchemy import inspect
    return {ix["name"] for ix in inspect(engine).get_indexes("activity")}


def test_a_large_ingest_defers_the_activity_indexes_on_sqlite(engine, applier, monkeypatch):
    monkeypatch.setattr(apply, "BULK_MIN_ROWS", 3)
    every = _activity_indexes(engine)
    assert every == {"ix_activity_molecule_id", "ix_activity_target_id", "ix_activity_inactive"}
    applier.apply(make_batch([ROW]))  # no size announced: nothing changes
    applier.plan([replace(make_batch([{**ROW, "activity_id": "2"}], ingest="small"), rows_total=2)])
    assert not applier.indexes_deferred and _activity_indexes(engine) == every
    big = replace(make_batch([{**ROW, "activity_id": "3"}], ingest="big"), rows_total=5)
    applier.plan([big])
    deferred = engine.dialect.name == "sqlite"  # several PostgreSQL workers: never
    assert applier.indexes_deferred is deferred
    # (not the partial index of soft-deleted rows: small, and looked up all along)
    assert _activity_indexes(engine) == ({"ix_activity_inactive"} if deferred else every)
    applier.apply(big)
    applier.restore_indexes()
    assert not applier.indexes_deferred and _activity_indexes(engine) == every
    # A worker that stopped with them dropped gets them back when it starts again.
    Applier(engine, IdCache(None, namespace="test")).plan([replace(big, rows_total=50)])
    create_schema(engine)
    assert _activity_indexes(engine) == every
    assert count(engine, "activity") == 2


def test_soft_delete_hides_rows_through_the_data_layer(engine, applier):
    applier.apply(make_batch([ROW, {**ROW, "activity_id": "2"}]))
    table = Activity.__table__
    with engine.begin() as conn:
        assert soft_delete(conn, table, [1]) == 1
    with engine.connect() as conn:
        assert [r.id for r in conn.execute(select_active(table))] == [2]
        assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 2
    with engine.begin() as conn:
        restore(conn, table, [1])
    with engine.connect() as conn:
        assert [r.id for r in conn.execute(select_active(table).order_by(table.c.id))] == [1, 2]


def test_completion_needs_every_expectedmake_batch(engine, applier):
    completion = Completion(engine)
    applier.apply(make_batch([ROW], seq=0))
    assert completion.settle("i1") is None  # the end marker has not arrived
    applier.record_end(EndOfIngest("i1", Mode.UPSERT, "file:///x", 2, 3, 2, 1, time.time()))
    assert completion.settle("i1") is None  # batch 1 is missing
    applier.apply(make_batch([{**ROW, "activity_id": "2"}], seq=1))
    done = completion.settle("i1")
    assert done.status == "completed" and done.report["rows_written"] == 2
    assert done.report["rows_rejected"] == 1 and done.report["batches"] == 2
    assert Completion(engine).settle("i1") is None  # claimed already: not for another worker
    assert completion.settle("i1") == done  # its claimer, until it has announced it
    completion.announced("i1")
    assert completion.settle("i1") is None


def test_an_announcement_left_unmade_is_claimed_again_after_its_lease(engine, applier):
    applier.apply(make_batch([ROW], seq=0))
    applier.record_end(EndOfIngest("i1", Mode.UPSERT, "file:///x", 1, 1, 1, 0, time.time()))
    first = Completion(engine, claimer="a", lease_s=3600).settle("i1")
    assert first is not None  # ... and worker a dies before announcing
    assert Completion(engine, claimer="b", lease_s=3600).settle("i1") is None
    again = Completion(engine, claimer="c", lease_s=0).settle("i1")
    assert again is not None and again.report == first.report  # the same stored report
    late = Completion(engine, claimer="a")
    late.announced("i1")  # a's claim was taken over: its mark changes nothing
    assert Completion(engine).open_ingests() == ["i1"]
    Completion(engine, claimer="c").announced("i1")
    assert Completion(engine).open_ingests() == []
    assert Completion(engine).finished({"i1"}) == {"i1"}


def test_schema_creation_is_repeatable(engine):
    first = create_schema(engine)
    assert create_schema(engine) == first


def test_schema_creation_waits_for_another_writer_on_sqlite(tmp_path):
    """A worker restarted after it died with its indexes dropped must rebuild them, while
    another connection may hold the write lock: it waits for the lock (busy timeout) instead
    of failing at once on the read-to-write upgrade."""
    path = tmp_path / "m.db"
    engine = make_engine(f"sqlite:///{path}", busy_timeout_s=30)
    create_schema(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_activity_target_id")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    # Deliberate timing (a lock held while create_schema asks for it is the fault under test):
    # released 1 s after create_schema's BEGIN IMMEDIATE, the event that starts the clock, so
    # the lock is held when it asks however slowly the test gets there.
    release = threading.Timer(1.0, other.execute, ["ROLLBACK"])

    def start_the_clock(_conn, _cursor, statement, *_args) -> None:
        if statement.startswith("BEGIN IMMEDIATE") and release.ident is None:
            release.start()

    event.listen(engine, "before_cursor_execute", start_the_clock)
    try:
        create_schema(engine)
    finally:
        event.remove(engine, "before_cursor_execute", start_the_clock)
        if release.ident is None:  # create_schema never asked for the lock
            other.execute("ROLLBACK")
        else:
            release.join()
        other.close()
    assert release.ident is not None, "create_schema did not ask for the write lock"
    assert "ix_activity_target_id" in _activity_indexes(engine)
    engine.dispose()


def _batch_of(columns: dict[str, list], *, seq: int = 0, ingest: str = "i1",
              mode: Mode = Mode.UPSERT) -> RowBatch:
    """A batch as another producer might send it: typed columns, no contract applied."""
    types = {"activity_id": pa.int64(), "molecule_id": pa.int64(), "target_id": pa.int64(),
             "activity_value": pa.float64(), "molecule_max_phase": pa.float64()}
    n = len(next(iter(columns.values())))
    table = pa.table({LINE: pa.array(range(2, 2 + n), pa.int64()),
                      **{c: pa.array(v, types.get(c, pa.string())) for c, v in columns.items()}})
    return decode(*encode_batch(RowBatch(ingest, seq, mode, table, time.time())))


def _molecules_and_targets(engine):
    with engine.connect() as conn:
        return (conn.execute(text("SELECT id, name, phase_id, structure, inchi_key FROM molecule "
                                  "ORDER BY id")).all(),
                conn.execute(text("SELECT id, name, organism_id FROM target ORDER BY id")).all(),
                conn.execute(text("SELECT id, unit_id, relation_id, value FROM activity "
                                  "ORDER BY id")).all())


def test_an_absent_optional_column_leaves_existing_values_alone(engine, applier):
    full = {**ROW, "molecule_inchi_key": "BSYNRYMUTXBXSQ-UHFFFAOYSA-N"}
    applier.apply(make_batch([full], ingest="full"))
    before = _molecules_and_targets(engine)
    # The same keys again from a file with only the required columns, plus a new row each.
    required = {"activity_id": [1, 2], "activity_type": ["IC50", "Ki"], "molecule_id": [10, 12],
                "target_id": [100, 102], "target_name": ["COX-1", "T2"]}
    result = applier.apply(_batch_of(required, ingest="required-only"))
    assert result.written["molecule"] == 1 and result.written["target"] == 1  # the new ones
    molecules, targets, activities = _molecules_and_targets(engine)
    assert molecules[0] == before[0][0] and targets[0] == before[1][0]  # untouched
    assert activities[0] == before[2][0]
    assert molecules[1][1:] == (None, None, None, None) and targets[1][2] is None  # new: NULL
    assert activities[1][1:] == (None, None, None)
    # A present column with an empty field still means NULL.
    applier.apply(make_batch([{**full, "molecule_name": "", "activity_units": ""}], ingest="empty"))
    molecules, _, activities = _molecules_and_targets(engine)
    assert molecules[0][1] is None and activities[0][1] is None
    assert molecules[0][3] == full["molecule_structure"]


def test_chembl_vocabulary_and_widths_land(engine, applier):
    """What the real export holds: relations << and >>, a 250-character type, names, SMILES
    and organisms at ChEMBL's widths, phases written 4.0, -1 and 0.5, values up to 1e20."""
    rows = [{**ROW, "activity_id": str(i), "activity_relation": rel, "molecule_id": str(10 + i),
             "molecule_max_phase": phase, "activity_value": value}
            for i, (rel, phase, value) in enumerate(
                [("<<", "4.0", "1e20"), (">>", "-1", "-3.5"), ("~", "0.5", "1E-05"),
                 ("", "", "")], start=1)]
    rows.append({**ROW, "activity_id": "9", "activity_type": "T" * 250,
                 "activity_units": "u" * 100, "molecule_id": "99", "molecule_name": "N" * 255,
                 "molecule_structure": "C" * 4000, "target_id": "199",
                 "target_name": "t" * 200, "target_organism": "o" * 150})
    result = applier.apply(make_batch(rows))
    assert result.written["activity"] == 5 and result.rejected == []
    with engine.connect() as conn:
        got = conn.execute(text(
            "SELECT a.id, r.value, p.value, a.value FROM activity a "
            "JOIN molecule m ON m.id = a.molecule_id LEFT JOIN phase p ON p.id = m.phase_id "
            "LEFT JOIN relation r ON r.id = a.relation_id ORDER BY a.id")).all()
        wide = conn.execute(text(
            "SELECT length(ty.value), length(m.name), length(m.structure), length(t.name), "
            "length(o.value), length(u.value) FROM activity a "
            "JOIN activity_type ty ON ty.id = a.activity_type_id "
            "JOIN molecule m ON m.id = a.molecule_id JOIN target t ON t.id = a.target_id "
            "JOIN organism o ON o.id = t.organism_id JOIN unit u ON u.id = a.unit_id "
            "WHERE a.id = 9")).one()
    assert [tuple(r) for r in got[:4]] == [(1, "<<", 4.0, 1e20), (2, ">>", -1.0, -3.5),
                                           (3, "~", 0.5, 1e-05), (4, None, None, None)]
    assert tuple(wide) == (250, 255, 4000, 200, 150, 100)


def test_rows_the_database_refuses_are_rejected_and_the_rest_applied(engine, applier):
    """A batch from another producer (no contract applied) with rows no database takes: a
    target without a name, an activity type wider than its column (PostgreSQL; SQLite has no
    widths). Those rows are rejected with the database's reason, the others applied."""
    n = 40
    columns = {"activity_id": list(range(1, n + 1)), "activity_type": ["IC50"] * n,
               "molecule_id": [10] * n, "target_id": list(range(100, 100 + n)),
               "target_name": [f"T{i}" for i in range(n)]}
    columns["target_name"][7] = None
    long_type = engine.dialect.name == "postgresql"
    if long_type:
        columns["activity_type"][30] = "X" * 300
    heard = []
    result = applier.apply(_batch_of(columns), on_rejected=lambda i, r: heard.append((i, r)))
    bad_lines = {9} | ({32} if long_type else set())
    assert {r.line for r in result.rejected} == bad_lines
    assert [len(r) for _, r in heard] == [len(bad_lines)]
    assert result.rows == n - len(bad_lines) == result.written["activity"]
    reasons = {r.line: r.reason for r in result.rejected}
    assert "the database refused the row (batch 0)" in reasons[9]
    assert "23502" in reasons[9] or "NOT NULL" in reasons[9]
    if long_type:
        assert "value too long" in reasons[32] and "22001" in reasons[32]
    assert count(engine, "activity") == n - len(bad_lines)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT rejected FROM applied_batch")).scalar_one() == len(
            bad_lines)
    assert applier.apply(_batch_of(columns)) is None  # a redelivery changes nothing


def test_a_batch_no_row_of_which_applies_fails_its_ingest_only(engine, applier):
    with engine.begin() as conn:  # a column gone: not the rows' fault
        conn.exec_driver_sql("ALTER TABLE molecule RENAME COLUMN inchi_key TO gone")
    refused = applier.apply(make_batch([ROW], ingest="broken"))
    assert isinstance(refused, apply.Refused) and refused.reason.startswith("batch 0: ")
    assert "inchi_key" in refused.reason
    # Its later batches are skipped; another ingest's rows (without InChIKeys) still land.
    assert applier.apply(make_batch([{**ROW, "activity_id": "2"}], seq=1, ingest="broken")) is None
    other = {"activity_id": [3], "activity_type": ["Ki"], "molecule_id": [10],
             "target_id": [100], "target_name": ["COX-1"]}
    assert applier.apply(_batch_of(other, ingest="other")).rows == 1
    with engine.connect() as conn:
        status, failure = conn.execute(text(
            "SELECT status, failure FROM ingest_run WHERE id = 'broken'")).one()
    assert status == "failed" and failure == refused.reason
    announced = Completion(engine).settle("broken")
    assert announced.status == "failed" and announced.failure == refused.reason


@pytest.mark.postgres
def test_a_database_made_by_an_older_molstream_is_brought_up_to_date(postgres_url):
    """Narrower PostgreSQL columns are widened; columns added since are added."""
    engine = make_engine(postgres_url)
    try:
        create_schema(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE activity_type ALTER COLUMN value TYPE varchar(200)")
            conn.exec_driver_sql("ALTER TABLE applied_batch DROP COLUMN rejected")
            conn.exec_driver_sql("ALTER TABLE ingest_run DROP COLUMN number")  # and its sequence
            conn.exec_driver_sql("DROP SEQUENCE ingest_run_number_seq")
            conn.exec_driver_sql("ALTER TABLE activity DROP COLUMN written_by")
        create_schema(engine)
        Applier(engine, IdCache(None, namespace="t")).apply(make_batch([ROW]))
        with engine.connect() as conn:
            width = conn.exec_driver_sql(
                "SELECT character_maximum_length FROM information_schema.columns "
                "WHERE table_name = 'activity_type' AND column_name = 'value'").scalar_one()
            cols = {r[0] for r in conn.exec_driver_sql(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'applied_batch'")}
        assert width == 250 and "rejected" in cols
        with engine.connect() as conn:  # runs are numbered again, and activities carry theirs
            assert conn.execute(text("SELECT a.written_by = r.number FROM activity a "
                                     "JOIN ingest_run r ON r.id = 'i1'")).scalar_one()
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_batch_interrupted_between_its_two_steps_counts_each_row_once(postgres_url,
                                                                        monkeypatch):
    """On PostgreSQL a batch's dimension values, molecules and targets commit before its
    activities. The worker dying in between (here: the second step failing) and the batch
    applied again leave the database and the report a clean application leaves."""
    rows = [ROW, {**ROW, "activity_id": "2", "molecule_id": "11", "target_id": "101",
                  "activity_type": "Ki", "target_organism": "Mus musculus"}]
    clean_engine = make_engine(postgres_url)
    create_schema(clean_engine)
    clean = Applier(clean_engine, IdCache(None, namespace="clean")).apply(make_batch(rows))
    clean_engine.dispose()

    engine = make_engine(create_database(postgres_url))  # dropped with the server
    create_schema(engine)
    applier = Applier(engine, IdCache(None, namespace="test"))

    def dies(*_args, **_kw):
        raise RuntimeError("the worker died here")

    with monkeypatch.context() as m:
        m.setattr(RowWriter, "write_activities", dies)
        with pytest.raises(RuntimeError):
            applier.apply(make_batch(rows))
    assert count(engine, "molecule") == 2 and count(engine, "activity") == 0
    with engine.connect() as conn:
        part = conn.execute(text("SELECT written FROM applied_part")).scalar_one()
    assert part == {**clean.written, "activity": 0}

    again = applier.apply(make_batch(rows))
    assert again.written == clean.written
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM applied_part")).scalar_one() == 0
        assert conn.execute(text("SELECT written FROM applied_batch")).scalar_one() == (
            clean.written)
    assert {t: count(engine, t) for t in DATA_TABLES} == {
        "phase": 1, "activity_type": 2, "unit": 1, "relation": 1, "organism": 2,
        "molecule": 2, "target": 2, "activity": 2}
    engine.dispose()

