"""The database layer and the applier on real SQLite and real PostgreSQL (no Kafka here)."""

import sqlite3
import threading
import time
from dataclasses import replace

import pyarrow as pa
import pytest
from molstream import apply
from molstream.apply import Applier, finish_if_complete
from molstream.cache import IdCache
from molstream.config import Mode
from molstream.contract import COLUMN_NAMES, LINE, validate
from molstream.db import (
    DATA_TABLES,
    Activity,
    Molecule,
    create_schema,
    make_engine,
    restore,
    select_active,
    soft_delete,
)
from molstream.messages import EndOfIngest, RowBatch, decode, encode_batch
from sqlalchemy import func, select, text

ROW = {
    "activity_id": "1", "molecule_id": "10", "molecule_name": "ASPIRIN", "molecule_max_phase": "4",
    "molecule_structure": "CC(=O)Oc1ccccc1C(=O)O", "molecule_inchi_key": "",
    "target_id": "100", "target_name": "COX-1", "target_organism": "Homo sapiens",
    "activity_type": "IC50", "activity_units": "nM", "activity_value": "12.5",
    "activity_relation": "=",
}


def _batch(rows: list[dict], *, seq: int = 0, mode: Mode = Mode.UPSERT, ingest: str = "i1"):
    chunk = pa.table({LINE: pa.array(range(2, 2 + len(rows)), pa.int64()),
                      **{c: pa.array([r[c] for r in rows], pa.string()) for c in COLUMN_NAMES}})
    valid, rejected = validate(chunk, max_field_bytes=10_000)
    assert rejected == []
    # Through the wire format, as the worker receives it.
    return decode(*encode_batch(RowBatch(ingest, seq, mode, valid, time.time())))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def applier(engine):
    return Applier(engine, IdCache(None, namespace="test"))


def _count(engine, name):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(DATA_TABLES[name])).scalar_one()


def test_rows_land_normalized_with_foreign_keys(engine, applier):
    rows = [ROW, {**ROW, "activity_id": "2", "activity_type": "Ki", "activity_units": "",
                  "activity_relation": "", "activity_value": ""},
            {**ROW, "activity_id": "3", "molecule_id": "11", "molecule_name": "",
             "molecule_max_phase": "", "target_id": "101", "target_organism": ""}]
    result = applier.apply(_batch(rows))
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
    batch = _batch([ROW])
    assert applier.apply(batch) is not None
    with engine.connect() as conn:
        before = conn.execute(select(Activity.__table__)).all()
    assert applier.apply(batch) is None
    with engine.connect() as conn:
        assert conn.execute(select(Activity.__table__)).all() == before


def test_insert_only_keeps_existing_rows_and_upsert_updates_in_place(engine, applier):
    applier.apply(_batch([ROW], ingest="first"))
    changed = {**ROW, "molecule_name": "ACETYLSALICYLIC ACID", "activity_value": "99"}
    applier.apply(_batch([changed], ingest="second", mode=Mode.INSERT_ONLY))
    with engine.connect() as conn:
        assert conn.execute(select(Molecule.__table__.c.name)).scalar_one() == "ASPIRIN"
        created, modified = conn.execute(select(Activity.__table__.c.created_on,
                                                Activity.__table__.c.last_modified_on)).one()
    time.sleep(0.05)
    result = applier.apply(_batch([changed], ingest="third", mode=Mode.UPSERT))
    assert result.written["molecule"] == 1 and result.written["activity"] == 1
    with engine.connect() as conn:
        assert conn.execute(select(Molecule.__table__.c.name)).scalar_one() == changed[
            "molecule_name"]
        value, created2, modified2 = conn.execute(select(
            Activity.__table__.c.value, Activity.__table__.c.created_on,
            Activity.__table__.c.last_modified_on)).one()
    assert value == 99.0 and created2 == created and modified2 > modified
    assert all(_count(engine, t) == 1 for t in ("molecule", "target", "activity"))
    # The same data again, upserted: nothing differs, so nothing is written or touched.
    again = applier.apply(_batch([changed], ingest="fourth", mode=Mode.UPSERT))
    assert again.written["activity"] == 0 and again.written["molecule"] == 0


def test_a_batch_repeating_an_activity_id_keeps_the_last_one(engine, applier):
    # Our fetcher drops repeats; a batch from another producer may not, and must not fail.
    rows = [ROW, {**ROW, "activity_id": "2"}, {**ROW, "activity_value": "7"}]
    result = applier.apply(_batch(rows))
    assert result is not None and _count(engine, "activity") == 2
    with engine.connect() as conn:
        assert conn.execute(select(Activity.__table__.c.value).where(
            Activity.__table__.c.id == 1)).scalar_one() == 7.0


def test_batches_applied_together_equal_batches_applied_one_by_one(engine, applier, tmp_path):
    """apply_many (one transaction for several batches, as the worker does on SQLite) writes
    what applying them in turn writes: a molecule repeated unchanged is written once, one that
    changes in a later batch is updated, a batch seen before in the group changes nothing, and
    rows out of key order still land."""
    renamed = {**ROW, "activity_id": "5", "molecule_name": "RENAMED", "molecule_max_phase": "2"}
    batches = [
        _batch([ROW, {**ROW, "activity_id": "2", "target_id": "101"}], seq=0),
        _batch([{**ROW, "activity_id": "4"}, {**ROW, "activity_id": "3"}], seq=1),
        _batch([renamed, {**ROW, "activity_id": "6", "molecule_id": "11"}], seq=2),
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
    assert every == {"ix_activity_molecule_id", "ix_activity_target_id"}
    applier.apply(_batch([ROW]))  # no size announced: nothing changes
    applier.plan([replace(_batch([{**ROW, "activity_id": "2"}], ingest="small"), rows_total=2)])
    assert not applier.indexes_deferred and _activity_indexes(engine) == every
    big = replace(_batch([{**ROW, "activity_id": "3"}], ingest="big"), rows_total=5)
    applier.plan([big])
    deferred = engine.dialect.name == "sqlite"  # several PostgreSQL workers: never
    assert applier.indexes_deferred is deferred
    assert _activity_indexes(engine) == (set() if deferred else every)
    applier.apply(big)
    applier.restore_indexes()
    assert not applier.indexes_deferred and _activity_indexes(engine) == every
    # A worker that stopped with them dropped gets them back when it starts again.
    Applier(engine, IdCache(None, namespace="test")).plan([replace(big, rows_total=50)])
    create_schema(engine)
    assert _activity_indexes(engine) == every
    assert _count(engine, "activity") == 2


def test_soft_delete_hides_rows_through_the_data_layer(engine, applier):
    applier.apply(_batch([ROW, {**ROW, "activity_id": "2"}]))
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


def test_completion_needs_every_expected_batch(engine, applier):
    applier.apply(_batch([ROW], seq=0))
    assert not finish_if_complete(engine, "i1")  # the end marker has not arrived
    applier.record_end(EndOfIngest("i1", Mode.UPSERT, "file:///x", 2, 3, 2, 1, time.time()))
    assert not finish_if_complete(engine, "i1")  # batch 1 is missing
    applier.apply(_batch([{**ROW, "activity_id": "2"}], seq=1))
    assert finish_if_complete(engine, "i1")
    assert not finish_if_complete(engine, "i1")  # only one caller wins


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
    release = threading.Timer(1.0, other.execute, ["ROLLBACK"])
    release.start()
    try:
        create_schema(engine)
    finally:
        release.join()
        other.close()
    assert "ix_activity_target_id" in _activity_indexes(engine)
    engine.dispose()
