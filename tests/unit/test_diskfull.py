"""A full SQLite database told apart from other errors, and worded (unit: a real SQLite file
whose max_page_count makes it full; the full volume itself is tests/reliability/
test_database_full.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from molstream import diskfull
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError


def _full_error(path: Path) -> BaseException:
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            conn.execute(text("PRAGMA max_page_count=8"))
            conn.execute(text("CREATE TABLE t (x TEXT)"))
            for _ in range(100):
                conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": "x" * 4000})
    except OperationalError as e:
        return e
    finally:
        engine.dispose()
    raise AssertionError("the database did not fill")


def test_sqlite_full_is_told_apart(tmp_path: Path) -> None:
    error = _full_error(tmp_path / "full.db")
    assert diskfull.is_disk_full(error)
    assert diskfull.is_disk_full(error.orig)
    locked = sqlite3.OperationalError("database is locked")
    locked.sqlite_errorcode = 5  # SQLITE_BUSY
    assert not diskfull.is_disk_full(locked)
    assert not diskfull.is_disk_full(ValueError("disk is full"))  # never by its words


def test_a_roomy_volume_points_at_sqlite_s_temporary_files(tmp_path: Path) -> None:
    # (the full volume itself, named with what the rows need: test_database_full.py)
    db = tmp_path / "molstream.db"
    error = _full_error(db)
    engine = create_engine(f"sqlite:///{db}")
    try:
        line = diskfull.describe(engine, error, rows_left=1_000_000)
    finally:
        engine.dispose()
    assert "\n" not in line and line.startswith("database full: ")
    assert "temporary files" in line and "SQLITE_TMPDIR" in line
    assert str(diskfull.mount_point(tmp_path)) in line


def test_a_postgresql_line_names_the_server_s_words() -> None:
    import psycopg

    error = psycopg.errors.DiskFull('could not extend file "base/1/2": No space left on device')
    assert diskfull.is_disk_full(error)
    engine = create_engine("postgresql+psycopg://u@db.example.org/molstream")
    line = diskfull.describe(engine, error, rows_left=2_000_000)
    assert "db.example.org" in line and "could not extend file" in line and "53100" in line
    assert "2,000,000 rows still to apply need about 343.3 MiB more" in line


@pytest.mark.parametrize("dialect, rows, at_least", [("sqlite", 24_000_000, 3_000_000_000),
                                                      ("postgresql", 24_000_000, 4_000_000_000)])
def test_what_a_whole_release_needs(dialect: str, rows: int, at_least: int) -> None:
    # bench/sizes.py: ~2.7 GB (SQLite) and ~4.2 GB (PostgreSQL) at 24M, extrapolated
    assert diskfull.needed_bytes(dialect, rows) >= at_least


def test_told_once_per_episode_and_cleared(tmp_path: Path) -> None:
    from molstream.db import create_schema

    db = tmp_path / "molstream.db"
    engine = create_engine(f"sqlite:///{db}")
    create_schema(engine)
    sent = []
    full = diskfull.DiskFull(engine, send=lambda *a: sent.append(a))

    class Batch:
        ingest_id, rows_total = "i1", 5000

    full.working_on([Batch()])
    error = _full_error(tmp_path / "other.db")
    assert full.noticed(error) and full.noticed(error)
    assert len(sent) == 1 and sent[0][0] == "i1" and sent[0][1].startswith("database full")
    assert sent[0][2] == diskfull.needed_bytes("sqlite", 5000)
    assert not full.noticed(ValueError("x"))
    assert full.cleared() and not full.cleared()
    assert full.noticed(error) and len(sent) == 2  # a new episode is told again
    engine.dispose()
