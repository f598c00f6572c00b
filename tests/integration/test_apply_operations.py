"""The apply path beside real operations on the database: a restore from a backup, values a
person deletes or soft-deletes, a late second copy of a batch, a claim that outlives its lease.
On real SQLite and PostgreSQL (and real Redis, where the cache is the point)."""

from __future__ import annotations

import shutil
import threading
import time

import pytest
from batches import ROW, count, make_batch
from molstream.apply import Applier
from molstream.cache import IdCache
from molstream.completion import Completion
from molstream.config import Mode
from molstream.db import (
    Activity,
    Molecule,
    create_schema,
    make_engine,
    restore,
    soft_delete,
)
from molstream.messages import EndOfIngest
from molstream.writes import RowWriter
from sqlalchemy import make_url, select, text
from waits import EVENT_TIMEOUT_S

KI = {**ROW, "activity_id": "2", "activity_type": "Ki"}
EC50 = {**ROW, "activity_id": "3", "activity_type": "EC50"}


def _types(engine) -> dict[int, str]:
    """Each activity's type, as the database says."""
    with engine.connect() as conn:
        return dict(conn.execute(text(
            "SELECT a.id, t.value FROM activity a JOIN activity_type t "
            "ON t.id = a.activity_type_id ORDER BY a.id")).all())


def _cache(redis_url: str, engine) -> IdCache:
    return IdCache(redis_url, namespace=create_schema(engine))


def _end(applier: Applier, ingest: str, batches: int, rows: int) -> None:
    applier.record_end(EndOfIngest(ingest, Mode.UPSERT, "file:///x", batches, rows, rows, 0,
                                   time.time()))


# -- cached ids are checked against the database -------------------------------------------------


def test_a_wrong_id_in_redis_is_found_and_replaced(engine, redis_url):
    cache = _cache(redis_url, engine)
    Applier(engine, cache).apply(make_batch([ROW, KI]))
    ids = cache.lookup("activity_type", ["IC50", "Ki"])
    # Redis says Ki is IC50's id (a bad restore of Redis, a bug, a hand): a new worker believes it
    cache._redis.hset(cache._key("activity_type"), "Ki", ids["IC50"])
    fresh = _cache(redis_url, engine)
    Applier(engine, fresh).apply(make_batch([{**KI, "activity_id": "4"}], seq=1))
    assert _types(engine) == {1: "IC50", 2: "Ki", 4: "Ki"}
    assert int(cache._redis.hget(cache._key("activity_type"), "Ki") or ids["Ki"]) == ids["Ki"]
    fresh.close()
    cache.close()


def _copy(engine, tmp_path, postgres: bool) -> str:
    """A copy of `engine`'s database as it is now (a backup): its URL."""
    engine.dispose()
    if postgres:
        name = f"{make_url(engine.url).database}_backup"
        server = make_url(engine.url).set(drivername="postgresql", database="postgres")
        import psycopg
        with psycopg.connect(server.render_as_string(hide_password=False),
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{make_url(engine.url).database}"')
        return make_url(engine.url).set(database=name).render_as_string(hide_password=False)
    backup = tmp_path / "backup.sqlite"
    shutil.copyfile(make_url(engine.url).database, backup)
    return f"sqlite:///{backup}"


def test_after_a_restore_from_a_backup_cached_ids_that_mean_another_value_are_not_used(
        engine, redis_url, tmp_path):
    postgres = engine.dialect.name == "postgresql"
    backup_url = _copy(engine, tmp_path, postgres)  # the backup: schema, instance id, no rows
    cache = _cache(redis_url, engine)
    Applier(engine, cache).apply(make_batch([KI]))  # Ki gets the first id, and Redis knows it
    # The database is restored from the backup; before the worker's next batch, another
    # ingest (no cache) gives the first id to EC50.
    restored = make_engine(backup_url)
    assert create_schema(restored) == create_schema(engine)  # same instance: same Redis keys
    Applier(restored, IdCache(None, namespace="other")).apply(make_batch([EC50], ingest="i0"))
    worker = Applier(restored, _cache(redis_url, restored))
    worker.apply(make_batch([{**KI, "activity_id": "5"}], seq=1))
    assert _types(restored) == {3: "EC50", 5: "Ki"}  # not EC50 for the file's Ki
    restored.dispose()
    cache.close()


def test_a_deleted_unused_value_is_made_again_not_refused(engine, redis_url):
    cache = _cache(redis_url, engine)
    applier = Applier(engine, cache)
    applier.apply(make_batch([{**ROW, "activity_units": "uM"}]))
    with engine.begin() as conn:  # a person removes the activity, then the unit nobody uses
        conn.execute(text("DELETE FROM activity"))
        conn.execute(text("DELETE FROM unit WHERE value = 'uM'"))
    again = applier.apply(make_batch([{**ROW, "activity_id": "7", "activity_units": "uM"}],
                                     seq=1))
    assert again.rejected == [] and again.written["unit"] == 1
    with engine.connect() as conn:
        assert conn.execute(text("SELECT u.value FROM activity a JOIN unit u ON u.id = a.unit_id"
                                 )).scalars().all() == ["uM"]
    cache.close()


@pytest.mark.postgres
def test_a_value_deleted_between_the_check_and_the_insert_is_retried_once(postgres_url,
                                                                         monkeypatch):
    """PostgreSQL: the ids are checked, then another session deletes one (the statement-level
    reference check refuses the activities): the batch is applied again with its ids checked
    again, and nothing is rejected."""
    engine = make_engine(postgres_url)
    create_schema(engine)
    applier = Applier(engine, IdCache(None, namespace="t"))
    applier.apply(make_batch([{**ROW, "activity_units": "uM"}]))
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM activity"))
    original = RowWriter.write_activities
    deleted = []

    def delete_first(self, conn, *args):
        if not deleted:  # as another session would, committed before our insert
            with engine.begin() as other:
                other.execute(text("DELETE FROM unit WHERE value = 'uM'"))
            deleted.append(True)
        return original(self, conn, *args)

    monkeypatch.setattr(RowWriter, "write_activities", delete_first)
    again = applier.apply(make_batch([{**ROW, "activity_id": "7", "activity_units": "uM"}],
                                     seq=1))
    assert deleted and again.rejected == [] and count(engine, "activity") == 1
    engine.dispose()


# -- a batch claimed before it writes anything (PostgreSQL's two steps) -------------------------


@pytest.mark.postgres
def test_a_late_second_copy_of_a_batch_never_overwrites_a_newer_ingest(postgres_url,
                                                                       monkeypatch):
    """Copy A commits the batch's first step and stalls; copy B (a worker that lost the
    partition, still applying what it polled) starts; A finishes; a newer ingest renames the
    molecule; B goes on. The newer name survives, and the batch is counted once."""
    engine = make_engine(postgres_url)
    create_schema(engine)
    old = make_batch([{**ROW, "molecule_name": "OLD NAME"}], ingest="old")
    a_step_one, go_a, b_at_parents, go_b = (threading.Event() for _ in range(4))
    write_activities, write_parents = RowWriter.write_activities, RowWriter.write_parents

    def a_stalls(self, *args):
        if threading.current_thread().name == "A":
            a_step_one.set()
            go_a.wait(EVENT_TIMEOUT_S)
        return write_activities(self, *args)

    def b_stalls(self, *args):
        if threading.current_thread().name == "B":
            b_at_parents.set()
            go_b.wait(EVENT_TIMEOUT_S)
        return write_parents(self, *args)

    monkeypatch.setattr(RowWriter, "write_activities", a_stalls)
    monkeypatch.setattr(RowWriter, "write_parents", b_stalls)
    outcomes: dict[str, object] = {}

    def copy(name: str) -> threading.Thread:
        applier = Applier(engine, IdCache(None, namespace=name))
        thread = threading.Thread(name=name, target=lambda: outcomes.__setitem__(
            name, applier.apply(old)))
        thread.start()
        return thread

    a = copy("A")
    assert a_step_one.wait(EVENT_TIMEOUT_S)
    b = copy("B")
    # B either stops before writing molecules (as it did before batches were claimed) or
    # finds A's claim and writes none: then it applies the activities and records the batch.
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while not b_at_parents.is_set() and b.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    go_a.set()
    a.join(EVENT_TIMEOUT_S)
    newer = make_batch([{**ROW, "activity_id": "9", "molecule_name": "NEW NAME"}],
                       ingest="new")
    Applier(engine, IdCache(None, namespace="n")).apply(newer)
    go_b.set()
    b.join(EVENT_TIMEOUT_S)
    assert not a.is_alive() and not b.is_alive()
    with engine.connect() as conn:
        assert conn.execute(select(Molecule.__table__.c.name)).scalar_one() == "NEW NAME"
        written = conn.execute(text("SELECT written FROM applied_batch WHERE ingest_id = 'old'"
                                    )).scalar_one()
        assert conn.execute(text("SELECT count(*) FROM applied_part")).scalar_one() == 0
    assert written["molecule"] == 1 and written["activity"] == 1
    assert sum(o is not None for o in outcomes.values()) == 1  # one copy applied it
    engine.dispose()


@pytest.mark.postgres
def test_a_batch_isolated_after_its_first_step_leaves_a_newer_ingest_s_values(postgres_url,
                                                                           monkeypatch):
    """The first step commits (OLD NAME) and the worker dies; a newer ingest renames the
    molecule; the batch comes again and one of its activities is refused (a check a DBA
    added), so its rows are isolated: the activities only, the molecule not written again."""
    engine = make_engine(postgres_url)
    create_schema(engine)
    rows = [{**ROW, "molecule_name": "OLD NAME"},
            {**ROW, "activity_id": "2", "molecule_name": "OLD NAME", "activity_value": "5000"}]

    def dies(*_args, **_kw):
        raise RuntimeError("the worker died here")

    with monkeypatch.context() as m:
        m.setattr(RowWriter, "write_activities", dies)
        with pytest.raises(RuntimeError):
            Applier(engine, IdCache(None, namespace="a")).apply(make_batch(rows, ingest="old"))
    Applier(engine, IdCache(None, namespace="n")).apply(make_batch(
        [{**ROW, "activity_id": "9", "molecule_name": "NEW NAME"}], ingest="new"))
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE activity ADD CONSTRAINT small CHECK (value < 1000)"))
    again = Applier(engine, IdCache(None, namespace="b")).apply(make_batch(rows, ingest="old"))
    assert len(again.rejected) == 1 and again.written["activity"] == 1
    assert again.written["molecule"] == 1  # the first step's, counted once
    with engine.connect() as conn:
        assert conn.execute(select(Molecule.__table__.c.name)).scalar_one() == "NEW NAME"
    engine.dispose()


@pytest.mark.postgres
def test_no_batch_claim_is_left_after_an_ingest_completes_or_fails(postgres_url):
    engine = make_engine(postgres_url)
    create_schema(engine)
    applier = Applier(engine, IdCache(None, namespace="t"))
    completion = Completion(engine)
    applier.apply(make_batch([ROW], ingest="ok"))
    _end(applier, "ok", 1, 1)
    assert completion.settle("ok").status == "completed"
    # A second step that the database refuses for good (a column gone): the first step's
    # molecules and targets are committed, the ingest fails.
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE activity DROP COLUMN value"))
    refused = applier.apply(make_batch([{**ROW, "activity_id": "2", "molecule_id": "11"}],
                                       ingest="broken"))
    assert "value" in refused.reason and count(engine, "molecule") == 2
    with engine.connect() as conn:
        assert conn.execute(text("SELECT ingest_id FROM applied_part")).scalars().all() == [
            "broken"]
    assert completion.settle("broken").status == "failed"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM applied_part")).scalar_one() == 0
    # and the sweep takes what an older molstream (or a worker that died) left
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO applied_part (ingest_id, seq, written) "
                          "VALUES ('ok', 5, '{}')"))
    assert completion.sweep() == 1
    engine.dispose()


# -- soft delete on re-ingest ----------------------------------------------------------------


def test_a_soft_deleted_row_stays_inactive_when_a_file_brings_it_again(engine):
    applier = Applier(engine, IdCache(None, namespace="t"))
    applier.apply(make_batch([ROW, KI]))
    with engine.begin() as conn:
        assert soft_delete(conn, Activity.__table__, [2]) == 1
        assert soft_delete(conn, Molecule.__table__, [10]) == 1
    again = applier.apply(make_batch([{**ROW, "activity_value": "13", "molecule_name": "X"},
                                      {**KI, "activity_value": "99", "molecule_name": "X"},
                                      {**KI, "activity_value": "99", "molecule_name": "X"}],
                                     seq=1))
    # values updated, `active` untouched; counted apart (once a row), not as written
    assert again.written["activity"] == 1 and again.inactive["activity"] == 1
    assert again.written["molecule"] == 0 and again.inactive["molecule"] == 1
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, value, active FROM activity ORDER BY id")).all()
        assert [(r.id, r.value, bool(r.active)) for r in rows] == [(1, 13.0, True),
                                                                   (2, 99.0, False)]
        assert conn.execute(text("SELECT name, active FROM molecule")).one() == ("X", False)
    # the same rows again change nothing, and count nothing; insert-only leaves them alone
    same = applier.apply(make_batch([{**KI, "activity_value": "99", "molecule_name": "X"}],
                                    seq=2))
    assert same.inactive == {"molecule": 0, "target": 0, "activity": 0}
    kept = applier.apply(make_batch([{**KI, "activity_value": "1"}], seq=3,
                                    mode=Mode.INSERT_ONLY))
    assert kept.inactive["activity"] == 0 and kept.written["activity"] == 0
    _end(applier, "i1", 4, 7)
    report = Completion(engine).settle("i1").report
    assert report["tables"]["activity"] == 3 and report["tables_inactive"]["activity"] == 1
    assert report["table_totals"]["activity"] == 1  # active rows only
    assert report["table_inactive_totals"] == {"molecule": 1, "target": 0, "activity": 1}


def test_soft_delete_and_restore_change_and_count_only_rows_whose_state_changes(engine):
    Applier(engine, IdCache(None, namespace="t")).apply(make_batch([ROW, KI]))
    table = Activity.__table__

    def stamps() -> dict[int, object]:
        with engine.connect() as conn:
            return dict(conn.execute(select(table.c.id, table.c.last_modified_on)).all())

    with engine.begin() as conn:
        assert soft_delete(conn, table, [1]) == 1
    before = stamps()
    with engine.begin() as conn:
        assert soft_delete(conn, table, [1, 2]) == 1  # 1 was inactive already
    assert stamps()[1] == before[1]
    with engine.begin() as conn:
        assert restore(conn, table, [1]) == 1
    before = stamps()
    with engine.begin() as conn:
        assert restore(conn, table, [1, 2]) == 1  # 1 was active again already
    assert stamps()[1] == before[1]


# -- the announcement's claim --------------------------------------------------------------


def _whole(engine) -> None:
    applier = Applier(engine, IdCache(None, namespace="t"))
    applier.apply(make_batch([ROW]))
    _end(applier, "i1", 1, 1)


def test_a_claim_taken_over_after_its_lease_is_lost_to_its_first_claimer(engine):
    _whole(engine)
    first = Completion(engine, claimer="a", lease_s=60)
    assert first.settle("i1") is not None and first.renew("i1")
    with engine.begin() as conn:  # ... a stalls past its lease (a long index build, a pause)
        conn.execute(text("UPDATE ingest_run SET claimed_at = claimed_at - 3600"))
    second = Completion(engine, claimer="b", lease_s=60)
    assert second.settle("i1") is not None
    assert not first.renew("i1")  # a gives up: one `completed` event, b's
    assert second.renew("i1")


def test_leases_are_timed_by_the_database_s_clock_not_a_pod_s(engine, monkeypatch):
    _whole(engine)
    assert Completion(engine, claimer="a", lease_s=60).settle("i1") is not None
    # b's Pod clock is an hour ahead: by it, a's claim would have expired long ago
    monkeypatch.setattr(time, "time", lambda real=time.time: real() + 3600)
    assert Completion(engine, claimer="b", lease_s=60).settle("i1") is None
