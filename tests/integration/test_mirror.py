"""Mirror mode and provenance, with the real ChEMBL rows as releases: release 1 is the real file;
release 2 drops 5% of its activities, changes 3% and adds 1%; release 3 is release 1 again.
Through the real pipeline (FTP → fetcher → Kafka → worker) into SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import gzip
import io
import json
import time
from pathlib import Path

import pytest
from batches import ROW, make_batch
from molstream.apply import Applier
from molstream.cache import IdCache
from molstream.completion import Completion
from molstream.config import Mode
from molstream.db import Activity, make_engine, soft_delete
from molstream.messages import EndOfIngest
from sqlalchemy import text

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.ftp]

REAL_FILE = Path(__file__).parents[1] / "data" / "chembl-real" / "activities.csv.gz"


def _releases() -> tuple[list[str], dict[str, list[list[str]]], dict[str, set[int]]]:
    """The header, three releases' rows, and which activity ids each change touches."""
    with gzip.open(REAL_FILE, "rt", newline="", encoding="utf-8") as f:
        header, *rows = csv.reader(f)
    value = header.index("activity_value")
    # deterministic picks, spread over the file: 5% dropped, 3% changed
    dropped = {int(r[0]) for i, r in enumerate(rows) if i % 20 == 7}
    changed_rows = [r for i, r in enumerate(rows) if i % 33 == 5 and int(r[0]) not in dropped]
    changed = {int(r[0]) for r in changed_rows}
    top = max(int(r[0]) for r in rows)
    new_rows = [[str(top + 1 + i), *r[1:]] for i, r in enumerate(rows[::100])]
    second = []
    for r in rows:
        if int(r[0]) in dropped:
            continue
        if int(r[0]) in changed:
            r = list(r)
            r[value] = "123456.5"  # not a value the real file holds
        second.append(r)
    second += new_rows
    return header, {"r1": rows, "r2": second, "r3": rows}, {
        "dropped": dropped, "changed": changed, "new": {int(r[0]) for r in new_rows}}


def _serve(tmp_path: Path, ftp_server, header, releases) -> dict[str, str]:
    src = tmp_path / "releases"
    urls = {}
    for name, rows in releases.items():
        (src / name).mkdir(parents=True)
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([header, *rows])
        (src / name / "activities.csv.gz").write_bytes(gzip.compress(out.getvalue().encode()))
    server = ftp_server(src)
    for name in releases:
        urls[name] = server.url(f"{name}/activities.csv.gz")
    return urls


def _state(engine) -> dict[int, tuple]:
    with engine.connect() as conn:
        return {r.id: (bool(r.active), r.retired_by, r.value) for r in conn.execute(text(
            "SELECT id, active, retired_by, value FROM activity"))}


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres",
                                                             marks=pytest.mark.postgres)])
def test_a_mirror_follows_releases_of_the_real_rows(database, make_pipeline, ftp_server,
                                                    tmp_path, request):
    header, releases, touched = _releases()
    urls = _serve(tmp_path, ftp_server, header, releases)
    url = request.getfixturevalue("postgres_url") if database == "postgres" else None
    n1, n2 = len(releases["r1"]), len(releases["r2"])
    p = make_pipeline(database_url=url, batch_size=5000, rows_partitions=3,
                      mirror_key="chembl-activities", release="chembl_35")
    first = p.ingest(urls["r1"], "r1", mode=Mode.MIRROR)
    assert first["mirror"] == {"previous": None, "added": n1, "changed": 0, "retired": 0,
                               "restored": 0, "held_back": 0}
    engine = make_engine(p.settings.database_url)
    try:
        with engine.begin() as conn:  # a person hides one activity release 2 still has
            kept_hidden = next(i for i in sorted(touched["changed"]))
            assert soft_delete(conn, Activity.__table__, [kept_hidden]) == 1

        p = make_pipeline(database_url=p.settings.database_url, batch_size=5000,
                          rows_partitions=3, mirror_key="chembl-activities", release="chembl_36")
        second = p.ingest(urls["r2"], "r2", mode=Mode.MIRROR)
        # the person's hidden row is changed too, but counted apart and kept hidden
        assert second["mirror"] == {"previous": "r1", "added": len(touched["new"]),
                                    "changed": len(touched["changed"]) - 1,
                                    "retired": len(touched["dropped"]), "restored": 0,
                                    "held_back": 0}
        assert second["tables_inactive"]["activity"] == 1
        state = _state(engine)
        number = {r: _number(engine, r) for r in ("r1", "r2")}
        assert {i for i, s in state.items() if s[:2] == (False, number["r2"])} == (
            touched["dropped"])
        assert state[kept_hidden][:2] == (False, None)
        assert sum(s[0] for s in state.values()) == n2 - 1
        assert second["table_totals"]["activity"] == n2 - 1
        # molecules and targets are never retired, referred to by an active activity or not
        assert second["table_totals"]["molecule"] == first["table_totals"]["molecule"]
        with engine.connect() as conn:
            assert conn.execute(text(
                "SELECT count(*) FROM molecule m WHERE m.active AND NOT EXISTS (SELECT 1 FROM "
                "activity a WHERE a.molecule_id = m.id AND a.active)")).scalar_one() > 0

        # provenance: which release and file each activity came from (the README's query)
        with engine.connect() as conn:
            rows = dict(conn.execute(text(
                "SELECT a.id, r.release FROM activity a JOIN ingest_run r "
                "ON r.number = a.written_by")).all())
            assert rows[min(touched["new"])] == "chembl_36"
            assert rows[min(touched["changed"] - {kept_hidden})] == "chembl_36"
            unchanged = next(i for i in state if i not in touched["changed"] | touched["new"]
                             | touched["dropped"])
            assert rows[unchanged] == "chembl_35"  # not written again: still release 35's
            source, identity = conn.execute(text(
                "SELECT source, source_identity FROM ingest_run WHERE id = 'r2'")).one()
            assert source.endswith("r2/activities.csv.gz") and ":***@" in source  # redacted
            identity = identity if isinstance(identity, dict) else json.loads(identity)
            assert len(identity["sha256"]) == 64 and identity["size"] > 0
            assert ":***@" in identity["source"] or "@" not in identity["source"]  # redacted

        p = make_pipeline(database_url=p.settings.database_url, batch_size=5000,
                          rows_partitions=3, mirror_key="chembl-activities", release="r3")
        third = p.ingest(urls["r3"], "r3", mode=Mode.MIRROR)
        assert third["mirror"] == {"previous": "r2", "added": 0,
                                   "changed": len(touched["changed"]) - 1,
                                   "retired": len(touched["new"]),
                                   "restored": len(touched["dropped"]), "held_back": 0}
        state = _state(engine)
        assert {i for i, s in state.items() if not s[0]} == touched["new"] | {kept_hidden}
    finally:
        engine.dispose()


def _number(engine, ingest_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT number FROM ingest_run WHERE id = :i"),
                            {"i": ingest_id}).scalar_one()


def test_a_mirror_that_does_not_complete_retires_nothing(engine):
    applier = Applier(engine, IdCache(None, namespace="t"))
    rows = [ROW, {**ROW, "activity_id": "2"}, {**ROW, "activity_id": "3"}]

    def end(ingest: str, batches: int) -> None:
        applier.record_end(EndOfIngest(ingest, Mode.MIRROR, "file:///r", batches, 3, 3, 0,
                                       time.time(), mirror_key="k"))

    applier.apply(make_batch(rows, ingest="m1", mode=Mode.MIRROR))
    end("m1", 1)
    assert Completion(engine).settle("m1").report["mirror"]["added"] == 3
    # release 2 lacks activity 3, but its ingest stops after its first batch of two
    applier.apply(make_batch(rows[:1], ingest="m2", mode=Mode.MIRROR))
    end("m2", 2)
    assert Completion(engine).settle("m2") is None
    with engine.begin() as conn:  # and then fails
        conn.execute(text("UPDATE ingest_run SET status = 'failed' WHERE id = 'm2'"))
    assert Completion(engine).settle("m2").status == "failed"
    assert set(_state(engine)) == {1, 2, 3} and all(s[0] for s in _state(engine).values())
    # the next mirror compares itself with the last one that completed (m1): 2 and 3 go
    applier.apply(make_batch(rows[:1], ingest="m3", mode=Mode.MIRROR))
    end("m3", 1)
    assert Completion(engine, mirror_max_retire=1).settle("m3").report["mirror"]["retired"] == 2


def _mirror(applier: Applier, ingest: str, ids: list[int], *, batches: int | None = None):
    """A mirror run of the activities `ids` (one batch), ended; its settlement."""
    if ids:
        applier.apply(make_batch([{**ROW, "activity_id": str(i)} for i in ids], ingest=ingest,
                                 mode=Mode.MIRROR))
    applier.record_end(EndOfIngest(ingest, Mode.MIRROR, "file:///r", 1 if ids else 0,
                                   len(ids), len(ids), 0, time.time(), mirror_key="k"))


def test_a_mirror_that_would_retire_too_much_retires_nothing(engine):
    """A file cut short, or mostly rejected (a decimal comma, a wrong delimiter), or empty: the
    mirror holds back, says why, and the next one compares itself with the last good one."""
    applier = Applier(engine, IdCache(None, namespace="t"))
    completion = Completion(engine, mirror_max_retire=0.25)
    _mirror(applier, "m1", list(range(1, 11)))
    assert completion.settle("m1").report["mirror"]["added"] == 10
    _mirror(applier, "m2", [1])  # 9 of 10 gone: over the limit
    mirrored = completion.settle("m2").report["mirror"]
    assert (mirrored["retired"], mirrored["held_back"]) == (0, 9)
    assert "more than MOLSTREAM_MIRROR_MAX_RETIRE=0.25" in mirrored["held_back_reason"]
    _mirror(applier, "m3", [])  # an empty file
    mirrored = completion.settle("m3").report["mirror"]
    assert mirrored["retired"] == 0 and mirrored["held_back_reason"] == (
        "its file held no activity")
    assert all(s[0] for s in _state(engine).values())
    _mirror(applier, "m4", list(range(1, 10)))  # against m1, the last good one: 10 goes
    mirrored = completion.settle("m4").report["mirror"]
    assert (mirrored["previous"], mirrored["retired"], mirrored["held_back"]) == ("m1", 1, 0)


def test_what_a_mirror_still_running_holds_is_not_retired(engine):
    """Two runs of one source overlap (a rerun, a schedule): the one that completes first does
    not retire what the other, still running, holds."""
    applier = Applier(engine, IdCache(None, namespace="t"))
    completion = Completion(engine)
    _mirror(applier, "m1", [1, 2, 3, 4])
    completion.settle("m1")
    applier.apply(make_batch([{**ROW, "activity_id": "4"}], ingest="m3", mode=Mode.MIRROR))
    _mirror(applier, "m2", [1, 2, 3])  # lacks 4, which m3 (running) holds
    assert completion.settle("m2").report["mirror"]["retired"] == 0
    assert _state(engine)[4][0]


def test_a_retired_activity_comes_back_with_any_file_but_a_person_s_stays_deleted(engine):
    applier = Applier(engine, IdCache(None, namespace="t"))
    completion = Completion(engine)
    _mirror(applier, "m1", [1, 2, 3, 4, 5, 6, 7, 8])
    completion.settle("m1")
    _mirror(applier, "m2", [1, 2, 3, 4, 5, 6])
    assert completion.settle("m2").report["mirror"]["retired"] == 2
    with engine.begin() as conn:  # a person takes the mirror's retirement of 8 over
        assert soft_delete(conn, Activity.__table__, [8]) == 1
    back = applier.apply(make_batch([{**ROW, "activity_id": "7"}, {**ROW, "activity_id": "8"}],
                                    ingest="u1"))  # an upsert bringing both
    assert back.restored == 1 and back.inactive["activity"] == 0
    state = _state(engine)
    assert state[7][:2] == (True, None) and state[8][:2] == (False, None)
