"""Bad input refused: every file of corpus/ goes through the real fetcher, broker and worker and
ends as corpus/expected.json says: failed at once with a clear message and nothing published,
or completed with each bad row rejected (line and reason on the rejected topic) and every good
row written. Strings that look like spreadsheet formulas or SQL are data: stored verbatim."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from molstream.db import make_engine
from molstream.fetcher import IngestFailed
from molstream.worker import Worker
from sqlalchemy import text

CORPUS = Path(__file__).parent / "corpus"
EXPECTED = {k: v for k, v in json.loads((CORPUS / "expected.json").read_text()).items()
            if not k.startswith("_")}
FAILED = sorted(k for k, v in EXPECTED.items() if v["outcome"] == "failed")
TABLES = ("phase", "activity_type", "unit", "relation", "organism", "molecule", "target",
          "activity", "ingest_run", "applied_batch")

sys.path.insert(0, str(CORPUS))
import make_corpus  # noqa: E402

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


@pytest.fixture(scope="module")
def large_files(tmp_path_factory) -> dict[str, Path]:
    return make_corpus.large(tmp_path_factory.mktemp("large"))


def _path(name: str, large_files: dict[str, Path]) -> Path:
    return large_files[name] if EXPECTED[name].get("generated") else CORPUS / name


def _ingest_id(name: str) -> str:
    return "corpus-" + name.split(".")[0]


def test_the_committed_corpus_is_what_the_script_writes(large_files):
    committed = {p.name for p in CORPUS.iterdir() if p.suffix == ".csv"}
    assert committed == set(make_corpus.SMALL)
    for name, data in make_corpus.SMALL.items():
        assert (CORPUS / name).read_bytes() == data, f"{name} drifted from make_corpus.py"
    assert set(EXPECTED) == committed | set(large_files)
    assert (large_files["huge_field.csv"]).stat().st_size > 10_000_000


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_ends_as_expected(name, large_files, make_pipeline, topic_watch):
    case = EXPECTED[name]
    p = make_pipeline(**case.get("settings", {}))
    url, ingest = _path(name, large_files).as_uri(), _ingest_id(name)
    rows, rejected = topic_watch(p.settings.topics.rows), topic_watch(p.settings.topics.rejected)

    if case["outcome"] == "failed":
        with pytest.raises(IngestFailed) as failure:
            p.fetch(url, ingest)
        assert (failure.value.stage, case["message"] in failure.value.reason) == \
            (case["stage"], True), failure.value.reason
        # Nothing half-written: no batch, no rejection, no scratch file left behind.
        assert rows.end() == 0 and rejected.end() == 0
        assert not list(p.settings.work_dir.glob("*/*"))
        last = topic_watch(p.settings.topics.events).json()[-1]
        assert last["type"] == "failed" and case["message"] in last["reason"]
        return

    result = p.fetch(url, ingest)
    report = p.work(ingest)[-1]
    reasons = {str(m["line"]): m["reason"] for m in rejected.json()}
    assert sorted(reasons, key=int) == sorted(case["rejected"], key=int), reasons
    for line, expected_reason in case["rejected"].items():
        assert expected_reason in reasons[line], (line, reasons[line])
    assert result.rows_total == case["rows_total"]
    assert (report["rows_written"], report["rows_rejected"]) == \
        (case["rows_written"], len(case["rejected"]))
    engine = make_engine(p.settings.database_url)
    try:
        with engine.connect() as conn:
            values = dict(conn.execute(text("SELECT id, value FROM activity ORDER BY id")).all())
    finally:
        engine.dispose()
    assert sorted(values) == case["activity_ids"]
    for activity_id, value in case.get("activity_values", {}).items():
        assert values[int(activity_id)] == value  # the first occurrence won


def test_failed_ingests_leave_nothing_half_written(large_files, make_pipeline, topic_watch):
    """Every failing file, fetched onto one set of topics, then a worker: not a row anywhere."""
    p = make_pipeline(max_decompressed_bytes=100_000_000)
    for name in FAILED:
        with pytest.raises(IngestFailed):
            p.fetch(_path(name, large_files).as_uri(), _ingest_id(name))
    assert topic_watch(p.settings.topics.rows).end() == 0
    # The rows topic is empty (end offset 0, above): the worker has nothing to wait for. It
    # runs only to create its tables and to prove that nothing reaches them.
    worker = Worker(p.settings)
    worker.run(idle_timeout_s=3)
    engine = make_engine(p.settings.database_url)
    try:
        with engine.connect() as conn:
            counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()  # noqa: S608
                      for t in TABLES}
    finally:
        engine.dispose()
    assert counts == dict.fromkeys(TABLES, 0)
    failed = [e for e in topic_watch(p.settings.topics.events).json() if e["type"] == "failed"]
    assert sorted(e["ingest_id"] for e in failed) == sorted(_ingest_id(n) for n in FAILED)


def test_formula_strings_are_data_and_the_report_escapes_them(make_pipeline):
    """`=cmd|' /C calc'!A0` and friends land verbatim (never evaluated, never altered); in the
    report CSV, opened in spreadsheets, a cell that would start a formula is quoted with '."""
    p = make_pipeline()
    ingest = "=cmd|' /C calc'!A0"
    p.ingest((CORPUS / "formula.csv").as_uri(), ingest)
    engine = make_engine(p.settings.database_url)
    try:
        with engine.connect() as conn:
            names = dict(conn.execute(text("SELECT id, name FROM molecule")).all())
            targets = dict(conn.execute(text("SELECT id, name FROM target")).all())
            organisms = {r[0] for r in conn.execute(text("SELECT value FROM organism"))}
            types = {r[0] for r in conn.execute(text("SELECT value FROM activity_type"))}
            runs = [r[0] for r in conn.execute(text("SELECT id FROM ingest_run"))]
    finally:
        engine.dispose()
    assert names == {10: "=cmd|' /C calc'!A0", 11: '=HYPERLINK("http://evil.example/","x")',
                     12: "@SUM(A1:A9)", 13: "\t=1+1"}
    assert targets == {100: "COX-1", 101: "+SUM(1;2)", 102: "-2+3+cmd|x", 103: "COX-1"}
    assert organisms == {"Homo sapiens", "=1+1"} and types == {"IC50", "=IC50"}
    assert runs == [ingest]
    reports = list(p.settings.reports_dir.glob("*.csv"))
    assert len(reports) == 1
    with open(reports[0], newline="") as f:
        cells = {(r["section"], r["name"]): r["value"] for r in csv.DictReader(f)}
    assert cells[("summary", "ingest_id")] == "'" + ingest
    assert cells[("summary", "rows_written")] == "4"


def test_report_cells_never_start_a_formula(tmp_path):
    from molstream import report

    rep = {"ingest_id": "\t=1+1", "source": "\r=2+2", "mode": "@SUM(1)", "rows_total": -3,
           "rows_published": "+1", "rows_written": 4, "rows_rejected": "-2+3", "batches": 1,
           "duration_s": 0.5, "tables": dict.fromkeys(report.TABLES, 0),
           "table_totals": dict.fromkeys(report.TABLES, 0)}
    with open(report.write_csv(rep, tmp_path), newline="") as f:
        cells = {r["name"]: r["value"] for r in csv.DictReader(f) if r["section"] == "summary"}
    assert cells["ingest_id"] == "'\t=1+1" and cells["source"] == "'\r=2+2"
    assert cells["mode"] == "'@SUM(1)" and cells["rows_rejected"] == "'-2+3"
    assert cells["rows_total"] == "-3" and cells["rows_published"] == "+1"  # numbers stay numbers
