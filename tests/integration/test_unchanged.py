"""Never the same file twice, against the real FTP and HTTP servers and the real broker: a
source whose identity (ETag, Last-Modified/MDTM + size, sha256) is the one loaded before ends
the run as unchanged with no rows and no end marker on Kafka; a changed file is ingested; force
ingests anyway; a URL glob takes the newest release not loaded yet."""

from __future__ import annotations

import gzip
import os
import time

import pytest
import waits
from molstream import fetcher
from molstream.fetch import Credentials
from molstream.fetch.identity import Identity, parse_loaded

pytestmark = [pytest.mark.kafka, pytest.mark.ftp]

REAL = os.path.join(os.path.dirname(__file__), "..", "data", "chembl-real", "activities.csv.gz")
ROWS = 400


def _real_lines() -> list[bytes]:
    with gzip.open(REAL, "rb") as f:
        return f.read().splitlines(keepends=True)


@pytest.fixture(scope="module")
def real_lines() -> list[bytes]:
    return _real_lines()


@pytest.fixture
def src(tmp_path, real_lines):
    root = tmp_path / "srv"
    root.mkdir()
    (root / "activities.csv").write_bytes(b"".join(real_lines[: ROWS + 1]))
    _touch(root / "activities.csv", 1_700_000_000)
    return root


def _touch(path, mtime: float) -> None:
    os.utime(path, (mtime, mtime))


def _run(p, url: str, ingest: str, *, loaded=(), force=False, credentials=None):
    return fetcher.run(url, ingest_id=ingest, settings=p.settings,
                       credentials=credentials or Credentials(), loaded=loaded, force=force)


def _published(p, ingest: str) -> list:
    """The rows-topic messages (batches and end marker) of one ingest."""
    rows = waits.topic_messages(p.settings.kafka_bootstrap, p.settings.topics.rows)
    return [m for m in rows if m.key.decode().startswith(f"{ingest}/")]


def _events(p, ingest: str) -> list[dict]:
    return [e for e in p.read_topic(p.settings.topics.events) if e["ingest_id"] == ingest]


def _loaded(*results) -> tuple[Identity, ...]:
    return tuple(Identity.from_dict(r.source) for r in results)


def _assert_unchanged(p, result, ingest: str, matched: str) -> dict:
    assert result.unchanged is not None and result.unchanged.startswith(matched), result
    assert (result.rows_published, result.batches) == (0, 0)
    assert _published(p, ingest) == []  # no batch, no end marker for a worker to wait on
    kinds = [e["type"] for e in _events(p, ingest) if e["type"] != "downloading"]
    assert kinds == ["started", "unchanged"], kinds
    return _events(p, ingest)[-1]


def test_http_etag_unchanged_then_changed_then_forced(make_pipeline, http_server, src):
    http = http_server(src)
    p = make_pipeline()
    url = http.url("activities.csv")
    first = _run(p, url, "h1")
    assert first.rows_published == ROWS and first.source["etag"]
    assert first.source["sha256"] and first.source["size"] == (src / "activities.csv").stat(
    ).st_size
    assert len(_published(p, "h1")) == 2  # one batch (batch size 1000) and the end marker
    identified = [e for e in _events(p, "h1") if e["type"] == "identified"]
    assert identified and identified[0]["etag"] == first.source["etag"]

    t0 = time.monotonic()
    second = _run(p, url, "h2", loaded=_loaded(first))
    assert time.monotonic() - t0 < 10
    event = _assert_unchanged(p, second, "h2", "ETag ")
    assert event["etag"] == first.source["etag"] and event["source"] == url
    assert [r["method"] for r in http.requests[-1:]] == ["HEAD"]  # nothing downloaded

    # New bytes of the same size, a new modification time: a new ETag, ingested.
    path = src / "activities.csv"
    data = path.read_bytes()
    path.write_bytes(data.replace(b",3600.0,", b",3700.0,", 1))
    assert path.stat().st_size == len(data)
    _touch(path, 1_700_000_100)
    third = _run(p, url, "h3", loaded=_loaded(first))
    assert third.unchanged is None and third.rows_published == ROWS
    assert third.source["etag"] != first.source["etag"]
    assert third.source["sha256"] != first.source["sha256"]

    forced = _run(p, url, "h4", loaded=_loaded(first, third), force=True)
    assert forced.unchanged is None and forced.rows_published == ROWS
    assert len(_published(p, "h4")) == 2


def test_http_last_modified_and_size_without_etag(make_pipeline, http_server, src):
    http = http_server(src, etag=False)
    p = make_pipeline()
    url = http.url("activities.csv")
    first = _run(p, url, "l1")
    assert "etag" not in first.source and first.source["last_modified"]
    second = _run(p, url, "l2", loaded=_loaded(first))
    _assert_unchanged(p, second, "l2", "modified ")
    _touch(src / "activities.csv", 1_700_000_500)  # touched: a new date, but the same bytes
    third = _run(p, url, "l3", loaded=_loaded(first))
    _assert_unchanged(p, third, "l3", "sha256 ")  # downloaded, found the same: still unchanged
    assert third.source["last_modified"] != first.source["last_modified"]


def test_sha256_when_the_server_gives_no_validators(make_pipeline, http_server, src):
    http = http_server(src, etag=False, last_modified=False, head=False)
    p = make_pipeline()
    url = http.url("activities.csv")
    first = _run(p, url, "s1")
    assert set(first.source) == {"url", "size", "sha256"}
    second = _run(p, url, "s2", loaded=_loaded(first))
    event = _assert_unchanged(p, second, "s2", f"sha256 {first.source['sha256']}")
    assert event["sha256"] == first.source["sha256"]
    (src / "activities.csv").write_bytes((src / "activities.csv").read_bytes()
                                         .replace(b",3600.0,", b",3700.0,", 1))
    third = _run(p, url, "s3", loaded=_loaded(first))
    assert third.unchanged is None and third.rows_published == ROWS


def test_ftp_mdtm_and_size(make_pipeline, ftp_server, src):
    ftp = ftp_server(src)
    p = make_pipeline()
    url = ftp.url("activities.csv")
    first = _run(p, url, "f1")
    assert first.source["last_modified"].startswith("2023") and first.source["size"] > 0
    assert "molstream" not in first.source["url"]  # no user name (nor password) recorded
    second = _run(p, url, "f2", loaded=_loaded(first))
    _assert_unchanged(p, second, "f2", "modified ")
    path = src / "activities.csv"
    path.write_bytes(path.read_bytes().replace(b",3600.0,", b",3700.0,", 1))
    _touch(path, 1_700_000_100)
    third = _run(p, url, "f3", loaded=_loaded(first))
    assert third.unchanged is None and third.rows_published == ROWS
    assert third.source["last_modified"] != first.source["last_modified"]
    fourth = _run(p, url, "f4", loaded=_loaded(first, third), force=True)
    assert fourth.rows_published == ROWS


def _release(root, name: str, lines: list[bytes], mtime: float):
    d = root / "releases" / name
    d.mkdir(parents=True)
    (d / "activities.csv.gz").write_bytes(gzip.compress(b"".join(lines), mtime=0))
    _touch(d / "activities.csv.gz", mtime)
    return d / "activities.csv.gz"


def test_ftp_glob_takes_the_newest_release_not_loaded(make_pipeline, ftp_server, tmp_path,
                                                      real_lines):
    """The real rows split in two releases: chembl_9 (the first half) is loaded, then
    chembl_10 (the second) appears and is loaded, then nothing is new."""
    root = tmp_path / "srv"
    header, rows = real_lines[0], real_lines[1:]
    half = len(rows) // 2
    _release(root, "chembl_9", [header, *rows[:half]], 1_700_000_000)
    (root / "releases" / "notes.txt").write_text("not a release")
    ftp = ftp_server(root)
    p = make_pipeline(batch_size=10_000)
    pattern = ftp.url("releases/chembl_*/activities.csv.gz")
    first = _run(p, pattern, "g1")
    assert first.rows_published == half
    assert first.source["url"].endswith("/releases/chembl_9/activities.csv.gz")
    assert first.source["release"] == "chembl_9"

    again = _run(p, pattern, "g2", loaded=_loaded(first))
    _assert_unchanged(p, again, "g2", "1 file(s) match, the newest by modification time")

    _release(root, "chembl_10", [header, *rows[half:]], 1_700_000_900)
    second = _run(p, pattern, "g3", loaded=_loaded(first))
    assert second.unchanged is None and second.rows_published == len(rows) - half
    assert second.source["release"] == "chembl_10"
    events = _events(p, "g3")
    assert events[0]["source"].endswith("/releases/chembl_*/activities.csv.gz")
    assert ftp.password not in str(events)
    identified = next(e for e in events if e["type"] == "identified")
    assert identified["source"].endswith("/releases/chembl_10/activities.csv.gz")
    end = _published(p, "g3")[-1]
    assert b"chembl_10" in end.value  # the end marker names the file, not the glob

    third = _run(p, pattern, "g4", loaded=_loaded(first, second))
    _assert_unchanged(p, third, "g4", "2 file(s) match")
    # An older release is not loaded after a newer one, even when it never was.
    assert _run(p, pattern, "g5", loaded=_loaded(second)).unchanged is not None
    # Forced: the newest match, loaded or not.
    assert _run(p, pattern, "g6", loaded=_loaded(first, second),
                force=True).rows_published == len(rows) - half


def test_glob_by_name_when_times_tie_and_literal_escapes(make_pipeline, ftp_server, tmp_path,
                                                         real_lines):
    root = tmp_path / "srv"
    lines = real_lines[: ROWS + 1]
    for name in ("chembl_9", "chembl_10", "chembl_2"):
        _release(root, name, lines, 1_700_000_000)
    ftp = ftp_server(root)
    p = make_pipeline()
    chosen = _run(p, ftp.url("releases/chembl_[0-9]*/activities.csv.gz"), "n1")
    assert chosen.source["release"] == "chembl_10"  # natural order: 10 after 9 and 2
    odd = root / "releases" / "a*b"
    odd.mkdir()
    (odd / "x.csv").write_bytes(b"".join(lines))
    assert _run(p, ftp.url("releases/a%2Ab/x.csv"), "n2").rows_published == ROWS  # literal


def test_http_globs_are_refused(make_pipeline, http_server, src):
    http = http_server(src)
    p = make_pipeline()
    with pytest.raises(fetcher.IngestFailed, match=r"globs .* not supported for http://"):
        _run(p, http.url("activit*.csv"), "x")
    assert _events(p, "x")[-1]["type"] == "failed"
    assert _published(p, "x") == []


def test_the_loaded_list_reads_what_the_operator_writes():
    loaded = parse_loaded('[{"url": "ftp://h/a", "lastModified": "20240101000000", "size": 5},'
                          ' {"nothing": 1}, {"url": "ftp://h/b", "etag": "\\"x\\""}]')
    assert loaded == (Identity("ftp://h/a", None, "20240101000000", 5),
                      Identity("ftp://h/b", '"x"'))
    with pytest.raises(ValueError, match="not JSON"):
        parse_loaded("[")
