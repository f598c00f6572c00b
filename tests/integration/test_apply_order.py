"""Row order does not change what lands: the real ChEMBL rows (tests/data/chembl-real, in their
sources' order, the id going down 3,481 times) applied in id order, in the file's order, sorted
by target and shuffled give the same database and the same counts, on SQLite and PostgreSQL,
into an empty table and over one that holds part of them (new ids COPY'd or plainly inserted,
the others merged: molstream.writes). On SQLite, a bulk ingest also holds new ids below the
table's largest apart and inserts them in id order when it completes (molstream.pending)."""

from __future__ import annotations

import csv
import gzip
import json
import random
import time
from dataclasses import replace
from pathlib import Path

import pytest
from batches import make_batch
from molstream import apply, pending, writes
from molstream.apply import Applied, Applier
from molstream.cache import IdCache
from molstream.completion import Completion
from molstream.config import Mode
from molstream.db import Activity, create_schema, make_engine, soft_delete
from molstream.messages import EndOfIngest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

DATA = Path(__file__).resolve().parents[1] / "data" / "chembl-real"
BATCH = 5_000


@pytest.fixture(scope="module")
def real_rows() -> list[dict]:
    with gzip.open(DATA / "activities.csv.gz", "rt", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _orders(rows: list[dict]) -> dict[str, list[dict]]:
    shuffled = list(rows)
    random.Random(20).shuffle(shuffled)
    return {
        "file": rows,
        "target": sorted(rows, key=lambda r: int(r["target_id"])),  # stable: file order within
        "shuffled": shuffled,
    }


def _by_id(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: int(r["activity_id"]))


@pytest.fixture
def fresh(engine, request):
    """Fresh databases of the engine fixture's kind, the first being the fixture's own."""
    made = []

    def make():
        if not made:
            made.append(engine)
            return engine
        if engine.dialect.name == "sqlite":
            url = f"sqlite:///{request.getfixturevalue('tmp_path') / f'db{len(made)}.sqlite'}"
        else:
            from molstream_dev.postgres import create_database
            url = create_database(request.getfixturevalue("postgres_url"))
        e = make_engine(url)
        create_schema(e)
        made.append(e)
        return e

    yield make
    for e in made[1:]:
        e.dispose()


def _apply(engine, rows: list[dict], *, ingest: str, mode: Mode = Mode.UPSERT,
           bulk: bool = False, held: list | None = None) -> dict:
    """`rows` in batches of BATCH, each applied as the worker would; their summed counts.
    `bulk`: announced as an ingest of their size (a large one to `Applier.plan`, which then
    defers the indexes on SQLite) and completed, as the worker completes one; `held` is given
    the number of rows held apart until then."""
    applier = Applier(engine, IdCache(None, namespace=f"order-{id(engine)}"))
    total = Applied(ingest, 0, 0)
    batches = [replace(make_batch(rows[i:i + BATCH], seq=n, mode=mode, ingest=ingest),
                       rows_total=len(rows) if bulk else None)
               for n, i in enumerate(range(0, len(rows), BATCH))]
    if bulk:
        applier.plan(batches)
        assert applier.indexes_deferred is (engine.dialect.name == "sqlite")
    for batch in batches:
        result = applier.apply(batch)
        assert isinstance(result, Applied) and not result.rejected
        total.add(result)
        total.rows += result.rows
    assert applier.apply(batches[len(batches) // 2]) is None  # redelivered: applied once
    if bulk:
        if held is not None:
            held.append(_held(engine))
        applier.record_end(EndOfIngest(ingest, mode, "file:///x", len(batches), len(rows),
                                       len(rows), 0, time.time()))
        done = Completion(engine).settle(ingest)
        assert done.status == "completed", done
        assert done.report["rows_written"] == total.written["activity"], done.report
        assert _held(engine) == 0  # all in the table, before anyone hears it completed
        applier.restore_indexes()
    return {"rows": total.rows, "written": total.written, "inactive": total.inactive,
            "inserted": total.inserted, "restored": total.restored}


def _held(engine) -> int:
    """Rows held apart by a bulk ingest on SQLite (molstream.pending)."""
    with engine.connect() as conn:
        return pending.held(conn)


def _snapshot(engine) -> dict:
    """Every table by values, not by the ids a dimension value happened to get."""
    queries = {
        "activity": "SELECT a.id, a.molecule_id, a.target_id, ty.value, u.value, r.value, "
                    "a.value, a.active, a.written_by, a.retired_by FROM activity a "
                    "JOIN activity_type ty ON ty.id = a.activity_type_id "
                    "LEFT JOIN unit u ON u.id = a.unit_id "
                    "LEFT JOIN relation r ON r.id = a.relation_id ORDER BY a.id",
        "molecule": "SELECT m.id, m.name, p.value, m.structure, m.inchi_key, m.active "
                    "FROM molecule m LEFT JOIN phase p ON p.id = m.phase_id ORDER BY m.id",
        "target": "SELECT t.id, t.name, o.value, t.active FROM target t "
                  "LEFT JOIN organism o ON o.id = t.organism_id ORDER BY t.id",
        **{d: f"SELECT value FROM {d} ORDER BY value"  # noqa: S608 - our own tables
           for d in ("phase", "activity_type", "unit", "relation", "organism")},
    }
    with engine.connect() as conn:
        return {t: [tuple(r) for r in conn.execute(text(q)).all()] for t, q in queries.items()}


def test_any_row_order_lands_like_id_order(fresh, real_rows):
    expected = json.loads((DATA / "expected.json").read_text())
    reference = fresh()
    counts = _apply(reference, _by_id(real_rows), ingest="in-order")
    want = _snapshot(reference)
    assert {t: len(v) for t, v in want.items()} == {
        t: expected[t] for t in want}
    assert counts["written"]["activity"] == counts["inserted"] == expected["activity"]
    for order, rows in _orders(real_rows).items():
        engine = fresh()
        assert _apply(engine, rows, ingest="in-order") == counts, order
        assert _snapshot(engine) == want, order


@pytest.mark.parametrize("order", ["file", "target", "shuffled"])
def test_a_bulk_ingest_in_any_order_lands_like_id_order(fresh, real_rows, monkeypatch, order):
    """A large ingest (here: any size) into an empty table: on SQLite the ids below the
    table's largest are held apart and inserted in id order as it completes."""
    monkeypatch.setattr(apply, "BULK_MIN_ROWS", 1)
    reference = fresh()
    counts = _apply(reference, _by_id(real_rows), ingest="in-order")
    want = _snapshot(reference)
    engine, held = fresh(), []
    assert _apply(engine, _orders(real_rows)[order], ingest="in-order", bulk=True,
                  held=held) == counts
    if engine.dialect.name == "sqlite":  # most of them: the first batch spans the ids
        assert len(real_rows) // 2 < held[0] < len(real_rows)
    assert _snapshot(engine) == want


@pytest.mark.parametrize("bulk", [False, True], ids=["batch by batch", "bulk"])
def test_a_file_over_part_of_its_rows_lands_like_id_order(fresh, real_rows, monkeypatch,
                                                          bulk):
    """The second file holds every row: half of them new, the others already there, some of
    those changed, some soft-deleted by a person (they stay so, counted apart), and some a
    mirror had retired (brought back). Each batch mixes new and existing ids. In bulk (a
    file at least the size of the table), SQLite holds the new ids apart until the mirror
    completes."""
    monkeypatch.setattr(apply, "BULK_MIN_ROWS", 1)
    by_id = _by_id(real_rows)
    first = by_id[::2]
    changed = {r["activity_id"] for r in first[::7]}
    second = [{**r, "activity_value": "123.25"} if r["activity_id"] in changed else r
              for r in real_rows]
    deleted = [int(r["activity_id"]) for r in first[3::50]]
    retired = [int(r["activity_id"]) for r in first[5::50]]

    def run(engine, rows):
        _apply(engine, first, ingest="first")
        with engine.begin() as conn:
            soft_delete(conn, Activity.__table__, deleted)
            conn.execute(Activity.__table__.update().where(
                Activity.__table__.c.id.in_(retired)).values(active=False, retired_by=1))
        return (_apply(engine, rows, ingest="second", mode=Mode.MIRROR, bulk=bulk),
                _snapshot(engine))

    counts, want = run(fresh(), _by_id(second))
    new = len(by_id) - len(first)
    assert counts["inserted"] == new
    assert counts["restored"] == len(retired)
    assert counts["inactive"]["activity"] == len(set(deleted) & {int(i) for i in changed})
    active = {r[0]: r[7] for r in want["activity"]}
    assert not any(active[i] for i in deleted) and all(active[i] for i in retired)
    ordered = _orders(second)
    for order in ("target", "shuffled"):
        assert run(fresh(), ordered[order]) == (counts, want), order


@pytest.mark.postgres
def test_a_new_id_another_worker_inserted_meanwhile_is_merged(postgres_url, real_rows,
                                                              monkeypatch):
    """PostgreSQL: ids the probe found absent but another worker inserted before the COPY (as
    if it had: the probe is made to miss them). The COPY fails on the unique key, in its
    savepoint, and the batch's rows are merged instead: nothing refused, counted once."""
    from molstream_dev.postgres import create_database

    rows = _orders(real_rows)["shuffled"][:BATCH]
    engine = make_engine(create_database(postgres_url))
    create_schema(engine)
    try:
        _apply(engine, rows[::3], ingest="other-worker")
        monkeypatch.setattr(writes, "held_ids", lambda *_a: None)
        counts = _apply(engine, rows, ingest="this-one")
        assert counts["rows"] == len(rows)
        assert counts["written"]["activity"] == len(rows) - len(rows[::3])
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM activity")).scalar_one() == len(rows)
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_only(engine):
    if engine.dialect.name != "sqlite":
        pytest.skip("rows are held apart on SQLite only")
    return engine


@pytest.mark.parametrize("later_mode", [Mode.UPSERT, Mode.INSERT_ONLY])
def test_held_rows_meet_a_later_ingest_as_rows_of_the_table(sqlite_only, real_rows,
                                                           monkeypatch, later_mode):
    """Held rows are the table's for everyone else: another ingest's batch finds them there
    (they are merged first), and updates them or, insert-only, leaves them; a value they
    refer to cannot be deleted meanwhile; a bulk ingest that fails keeps what it applied."""
    engine = sqlite_only
    monkeypatch.setattr(apply, "BULK_MIN_ROWS", 1)
    rows = _orders(real_rows)["shuffled"][:3 * BATCH]
    rows[BATCH + 20] = {**rows[BATCH + 20], "activity_units": "held-only unit"}
    applier = Applier(engine, IdCache(None, namespace="held"))
    bulk = [replace(make_batch(rows[i:i + BATCH], seq=n, ingest="bulk"), rows_total=len(rows))
            for n, i in enumerate(range(0, len(rows), BATCH))]
    applier.plan(bulk)
    for batch in bulk[:2]:
        applier.apply(batch)
    assert 0 < _held(engine) < 2 * BATCH
    with pytest.raises(IntegrityError), engine.begin() as conn:  # (a held row refers to it)
        conn.execute(text("DELETE FROM unit WHERE value = 'held-only unit'"))
    later = [{**r, "activity_value": "7.5"} for r in rows[BATCH:BATCH + 10]]  # held ones
    written = applier.apply(make_batch(later, ingest="later", mode=later_mode)).written
    assert _held(engine) == 0
    assert written["activity"] == (len(later) if later_mode is Mode.UPSERT else 0)
    with engine.begin() as conn:  # the bulk ingest fails (as a refused batch fails it)
        conn.execute(text("UPDATE ingest_run SET status = 'failed', failure = 'x' "
                          "WHERE id = 'bulk'"))
    done = Completion(engine).settle("bulk")
    assert done.status == "failed" and _held(engine) == 0
    applier.restore_indexes()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM activity")).scalar_one() == 2 * BATCH
        values = dict(conn.execute(text("SELECT id, value FROM activity")).all())
    want = {int(r["activity_id"]): float(r["activity_value"]) for r in rows[BATCH:BATCH + 10]}
    if later_mode is Mode.UPSERT:
        want = dict.fromkeys(want, 7.5)
    assert {i: values[i] for i in want} == want
    assert applier.apply(bulk[2]) is None  # its ingest failed: skipped
