"""The real ChEMBL rows of tests/data/chembl-real (read, never edited) written out in other
dialects and compressions, and with ChEMBL's own column names, each ingested through the real
pipeline (FTP → fetcher → Kafka → worker → SQLite, and PostgreSQL for some): the database must
hold what the plain CSV gives. A bomb of
each compression is refused before anything is published."""

from __future__ import annotations

import bz2
import csv
import functools
import gzip
import io
import lzma
import os
import zipfile
from pathlib import Path

import pytest
import zstandard
from expected import actual_tables, expected_tables
from molstream.contract import COLUMN_NAMES
from molstream.db import make_engine
from molstream.fetcher import IngestFailed

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.ftp]

# A verbatim copy of the shared real rows (with their README: sources, licence, attribution).
REAL = Path(os.environ.get("MOLSTREAM_TEST_CHEMBL_REAL",
                           Path(__file__).parents[1] / "data" / "chembl-real"))
REAL_FILE = REAL / "activities.csv.gz"
EXPECTED_COUNTS = {"activity": 44_077, "molecule": 32_767, "target": 14}
TOKENS = ("NULL", "None", "NA", "\\N")


@functools.cache
def _rows() -> tuple[list[str], list[list[str]]]:
    with gzip.open(REAL_FILE, "rt", newline="", encoding="utf-8") as f:
        header, *rows = csv.reader(f)
    assert header == list(COLUMN_NAMES)
    return header, rows


@functools.cache
def _expected() -> dict:
    expected = expected_tables(REAL_FILE)
    assert {k: len(expected[k]) for k in EXPECTED_COUNTS} == EXPECTED_COUNTS
    return expected


def _csv(*, delimiter=",", quoting=csv.QUOTE_MINIMAL, eol="\n", bom=False, header=None,
         rows=None) -> bytes:
    real_header, real_rows = _rows()
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, quoting=quoting, lineterminator=eol)
    writer.writerow(header or real_header)
    writer.writerows(rows if rows is not None else real_rows)
    return (("\ufeff" if bom else "") + out.getvalue()).encode()


def _null_tokens() -> bytes:
    """Every empty field written as one of the tokens, in turn."""
    _, rows = _rows()
    n = iter(range(10**9))
    return _csv(rows=[[v if v else TOKENS[next(n) % len(TOKENS)] for v in r] for r in rows])


def _zip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("chembl/activities.csv", data)
        z.writestr("chembl/README.txt", b"ChEMBL data is from http://www.ebi.ac.uk/chembl\n")
    return buf.getvalue()


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3).compress(data)


# name → (the file's bytes, the settings the ingest needs). Files are named without a hint
# of their format: the fetcher must tell it from the bytes.
VARIANTS = {
    "tsv": (lambda: _csv(delimiter="\t"), {}),
    "semicolon": (lambda: _csv(delimiter=";"), {}),
    "pipe": (lambda: _csv(delimiter="|"), {}),
    "all_quoted": (lambda: _csv(quoting=csv.QUOTE_ALL), {}),
    "bom": (lambda: _csv(bom=True), {}),
    "crlf": (lambda: _csv(eol="\r\n"), {}),
    "tsv_all_quoted_bom_crlf_given": (
        lambda: _csv(delimiter="\t", quoting=csv.QUOTE_ALL, eol="\r\n", bom=True),
        {"delimiter": "\t"}),
    "null_tokens": (_null_tokens, {"null_tokens": TOKENS}),
    "gzip": (lambda: gzip.compress(_csv()), {}),
    "bzip2": (lambda: bz2.compress(_csv()), {}),
    "xz": (lambda: lzma.compress(_csv()), {}),
    "zstd": (lambda: _zstd(_csv()), {}),
    "zip": (lambda: _zip(_csv()), {}),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_real_rows_land_the_same_in_every_dialect_and_compression(
        variant, make_pipeline, ftp_server, tmp_path):
    _lands_the_same(variant, make_pipeline, ftp_server, tmp_path)


@pytest.mark.postgres
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_real_rows_land_the_same_on_postgresql(variant, make_pipeline, ftp_server,
                                                    postgres_url, tmp_path):
    _lands_the_same(variant, make_pipeline, ftp_server, tmp_path, database_url=postgres_url)


def _lands_the_same(variant: str, make_pipeline, ftp_server, tmp_path, **db) -> None:
    """The variant's file, served by FTP under a name without a hint of its format, ingested:
    every real row written, none rejected, the tables the plain CSV gives."""
    make, settings = VARIANTS[variant]
    src = tmp_path / "srv"
    src.mkdir()
    (src / "activities").write_bytes(make())
    p = make_pipeline(batch_size=5000, **db, **settings)
    report = p.ingest(ftp_server(src).url("activities"), variant)
    assert (report["rows_written"], report["rows_rejected"]) == (44_077, 0)
    engine = make_engine(p.settings.database_url)
    try:
        assert actual_tables(engine) == _expected()
    finally:
        engine.dispose()


# ChEMBL's own names for the 13 columns: its schema's (activities, molecule_dictionary,
# compound_structures, target_dictionary) as a SQL export names them; pref_name, which ChEMBL
# uses for molecules and targets alike, mapped by spec.columns (here: Settings.columns).
CHEMBL_HEADER = ["activity_id", "standard_type", "standard_units", "standard_value",
                 "standard_relation", "molregno", "pref_name", "max_phase", "canonical_smiles",
                 "standard_inchi_key", "tid", "target_pref_name", "organism"]


def test_a_file_with_chembls_own_column_names_loads(make_pipeline, ftp_server, tmp_path):
    src = tmp_path / "srv"
    src.mkdir()
    (src / "chembl.tsv.gz").write_bytes(gzip.compress(_csv(delimiter="\t",
                                                           header=CHEMBL_HEADER)))
    url = ftp_server(src).url("chembl.tsv.gz")
    p = make_pipeline(batch_size=5000)
    with pytest.raises(IngestFailed, match="'pref_name' is ChEMBL's name for both "
                                           "molecule_name and target_name"):
        p.fetch(url, "ambiguous")
    p = make_pipeline(batch_size=5000, columns=(("pref_name", "molecule_name"),))
    report = p.ingest(url, "chembl-names")
    assert (report["rows_written"], report["rows_rejected"]) == (44_077, 0)
    engine = make_engine(p.settings.database_url)
    try:
        assert actual_tables(engine) == _expected()
    finally:
        engine.dispose()


def test_chembls_web_interface_export_is_refused_at_the_header(make_pipeline, ftp_server,
                                                               tmp_path):
    """`;`-separated and all quoted, as detection now reads it; but it has no activity id."""
    src = tmp_path / "srv"
    src.mkdir()
    (src / "webui.csv.gz").write_bytes((REAL / "webui_export_CHEMBL1978.csv.gz").read_bytes())
    p = make_pipeline()
    with pytest.raises(IngestFailed) as e:
        p.fetch(ftp_server(src).url("webui.csv.gz"), "webui")
    assert "when split on ';'" in e.value.reason
    assert "activity_id is an activity's natural key" in e.value.reason
    events = [ev["type"] for ev in p.read_topic(p.settings.topics.events)]
    assert events[-1] == "failed" and "publishing" not in events


def test_a_zip_with_several_csv_files_names_them(make_pipeline, ftp_server, tmp_path):
    src = tmp_path / "srv"
    src.mkdir()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("2024.csv", _csv(rows=_rows()[1][:100]))
        z.writestr("2025.csv", _csv(rows=_rows()[1][100:300]))
    (src / "both.zip").write_bytes(buf.getvalue())
    url = ftp_server(src).url("both.zip")
    with pytest.raises(IngestFailed, match=r"holds 2 CSV files \('2024.csv', '2025.csv'\)"):
        make_pipeline().fetch(url, "two-members")
    report = make_pipeline(zip_member="2025.csv").ingest(url, "one-member")
    assert report["rows_written"] == 200


BOMBS = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": _zstd,
    "zip": lambda d: _zip(d),
}


@pytest.mark.parametrize("kind", list(BOMBS))
def test_a_bomb_of_each_compression_is_refused(kind, make_pipeline, ftp_server, tmp_path):
    src = tmp_path / "srv"
    src.mkdir()
    (src / "bomb.csv").write_bytes(BOMBS[kind](_csv(rows=[]) + b"\0" * 50_000_000))
    p = make_pipeline(max_decompressed_bytes=5_000_000)
    with pytest.raises(IngestFailed, match=f"possible {kind} bomb"):
        p.fetch(ftp_server(src).url("bomb.csv"), f"bomb-{kind}")
    events = p.read_topic(p.settings.topics.events)
    assert events[-1]["type"] == "failed" and events[-1]["stage"] == "read"
    assert "inflates to more than 5000000 bytes (MOLSTREAM_MAX_DECOMPRESSED_BYTES)" in \
        events[-1]["reason"]
    assert not [e for e in events if e["type"] in ("publishing", "published")]


def test_a_null_token_in_a_required_column_rejects_its_row(make_pipeline, ftp_server, tmp_path):
    """Never a silent drop: the row is rejected with its line and reason, the others land."""
    header, rows = _rows()
    rows = [list(r) for r in (rows[0], rows[1], rows[3])]
    rows[1][header.index("target_name")] = "NULL"
    assert rows[2][header.index("molecule_name")] == "COCAINE"
    rows[2][header.index("molecule_name")] = "NULL"
    src = tmp_path / "srv"
    src.mkdir()
    (src / "a.csv").write_bytes(_csv(rows=rows, quoting=csv.QUOTE_ALL))
    p = make_pipeline(null_tokens=("NULL",))
    report = p.ingest(ftp_server(src).url("a.csv"), "required-null")
    assert (report["rows_written"], report["rows_rejected"]) == (2, 1)
    (rejected,) = p.read_topic(p.settings.topics.rejected)
    assert (rejected["line"], rejected["reason"]) == (3, "target_name is empty")
    engine = make_engine(p.settings.database_url)
    try:
        molecules = actual_tables(engine)["molecule"]
        assert molecules[int(rows[2][header.index("molecule_id")])][0] is None
    finally:
        engine.dispose()
