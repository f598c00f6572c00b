"""Files in the real export's shape, end to end (FTP → fetcher → Kafka → worker), on SQLite and
on PostgreSQL alike: ChEMBL's column order and vocabulary (`<<`, `>>`, empty relations, phases
written `4.0` and `-1`, values from negative to 1e20), ChEMBL's widths (a 250-character activity
type lands, a 251-character one is rejected naming the column and its limit), a file lacking
optional columns (existing values stay), and batches the database itself refuses."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pyarrow as pa
import pytest
from expected import actual_tables, expected_tables
from molstream.config import Mode
from molstream.contract import COLUMN_NAMES, LINE
from molstream.db import create_schema, make_engine
from molstream.messages import EndOfIngest, RowBatch
from molstream.publish import Publisher
from molstream.worker import Worker
from sqlalchemy import text

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.ftp]

# Rows shaped like ChEMBL's own (values from ChEMBL's documented vocabularies).
ROWS = [
    {"activity_id": "31863", "activity_type": "IC50", "activity_units": "nM",
     "activity_value": "1e20", "activity_relation": ">>", "molecule_id": "180094",
     "molecule_name": "", "molecule_max_phase": "", "molecule_structure":
     "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O", "molecule_inchi_key": "HEFNNWSXXWATRW-JTQLQIEISA-N",
     "target_id": "11", "target_name": "Tyrosine-protein kinase ABL1",
     "target_organism": "Homo sapiens"},
    {"activity_id": "31864", "activity_type": "Ki", "activity_units": "uM",
     "activity_value": "-3.2", "activity_relation": "<<", "molecule_id": "97",
     "molecule_name": "IBUPROFEN", "molecule_max_phase": "4.0", "molecule_structure": "CCO",
     "molecule_inchi_key": "LFQSCWFLJHTTHZ-UHFFFAOYSA-N", "target_id": "12",
     "target_name": 'Cytochrome P450 3A4, "CYP3A4"', "target_organism": "Homo sapiens"},
    {"activity_id": "31865", "activity_type": "Inhibition", "activity_units": "%",
     "activity_value": "", "activity_relation": "", "molecule_id": "98",
     "molecule_name": "N,N-DIMETHYL-4'-HYDROXY", "molecule_max_phase": "-1",
     "molecule_structure": "", "molecule_inchi_key": "", "target_id": "13",
     "target_name": "Plasmodium falciparum", "target_organism": "Plasmodium falciparum 3D7"},
    {"activity_id": "31866", "activity_type": "T" * 250, "activity_units": "ug.mL-1",
     "activity_value": "0.5", "activity_relation": "~", "molecule_id": "99",
     "molecule_name": "N" * 255, "molecule_max_phase": "0.5", "molecule_structure": "C" * 4000,
     "molecule_inchi_key": "", "target_id": "14", "target_name": "t" * 200,
     "target_organism": "o" * 150},
    {"activity_id": "31867", "activity_type": "T" * 251, "activity_units": "nM",
     "activity_value": "1", "activity_relation": "=", "molecule_id": "97",
     "molecule_name": "IBUPROFEN", "molecule_max_phase": "4", "molecule_structure": "CCO",
     "molecule_inchi_key": "", "target_id": "12", "target_name": "CYP3A4",
     "target_organism": "Homo sapiens"},
    {"activity_id": "31868", "activity_type": "Potency", "activity_units": "nM",
     "activity_value": "7.5", "activity_relation": ">=", "molecule_id": "100",
     "molecule_name": "", "molecule_max_phase": "2", "molecule_structure": "c1ccccc1",
     "molecule_inchi_key": "UHOVQNZJYSORNB-UHFFFAOYSA-N", "target_id": "11",
     "target_name": "Tyrosine-protein kinase ABL1", "target_organism": "Homo sapiens"},
]
TOO_WIDE = 31867  # its activity type is one character wider than ChEMBL's column


def _write(path: Path, rows: list[dict], columns=COLUMN_NAMES) -> Path:
    with open(path, "w", newline="") as f:
        out = csv.DictWriter(f, columns, extrasaction="ignore")
        out.writeheader()
        out.writerows(rows)
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'molstream.sqlite'}"
    return request.getfixturevalue("postgres_url")


def test_the_real_export_shape_lands_the_same_on_both_databases(
        make_pipeline, ftp_server, tmp_path, database_url):
    src = tmp_path / "srv"
    src.mkdir()
    _write(src / "activities.csv", ROWS)
    p = make_pipeline(database_url=database_url)
    report = p.ingest(ftp_server(src).url("activities.csv"), "chembl")
    assert (report["rows_written"], report["rows_rejected"]) == (5, 1)
    rejected = p.read_topic(p.settings.topics.rejected)
    assert [(r["line"], r["reason"]) for r in rejected] == [
        (6, "activity_type is longer than 250 characters (the width of ChEMBL's column and of "
            "the database's)")]
    engine = make_engine(database_url)
    try:
        assert actual_tables(engine) == expected_tables(src / "activities.csv",
                                                        skip_ids={TOO_WIDE})
        with engine.connect() as conn:
            relations = sorted(r[0] for r in conn.execute(text("SELECT value FROM relation")))
        assert relations == ["<<", ">=", ">>", "~"]
    finally:
        engine.dispose()


def test_a_file_lacking_optional_columns_leaves_existing_values(
        make_pipeline, ftp_server, tmp_path, database_url):
    src = tmp_path / "srv"
    src.mkdir()
    full = [r for r in ROWS if int(r["activity_id"]) != TOO_WIDE]
    _write(src / "full.csv", full)
    required = ["activity_id", "activity_type", "molecule_id", "target_id", "target_name"]
    new = {**full[0], "activity_id": "40000", "molecule_id": "5000", "target_id": "600"}
    _write(src / "required.csv", [*full, new], columns=required)
    ftp = ftp_server(src)
    p = make_pipeline(database_url=database_url)
    p.ingest(ftp.url("full.csv"), "full")
    engine = make_engine(database_url)
    try:
        before = actual_tables(engine)
        second = p.ingest(ftp.url("required.csv"), "required-only")
        assert second["rows_rejected"] == 0
        after = actual_tables(engine)
        for table in ("molecule", "target", "activity"):
            kept = {k: v for k, v in after[table].items() if k in before[table]}
            assert kept == before[table], table
        # A new row has NULL where the file had no column.
        assert after["molecule"][5000] == (None, None, None, None)
        assert after["target"][600] == (new["target_name"], None)
        assert after["activity"][40000][3:] == (None, None, None)
    finally:
        engine.dispose()


def _publish(p, batches: list[RowBatch]) -> None:
    """Batches and their end markers, as some other producer would send them."""
    publisher = Publisher(p.settings.kafka_bootstrap, p.settings.topics)
    try:
        for b in batches:
            publisher.send_batch(b)
        by_ingest: dict[str, list[RowBatch]] = {}
        for b in batches:
            by_ingest.setdefault(b.ingest_id, []).append(b)
        for ingest, bs in by_ingest.items():
            rows = sum(b.rows.num_rows for b in bs)
            publisher.send_end(EndOfIngest(ingest, Mode.UPSERT, "test://", len(bs), rows, rows,
                                           0, time.time()))
        publisher.wait_for_acks()
    finally:
        publisher.close()


def _typed(rows: list[dict], ingest: str, seq: int) -> RowBatch:
    types = {"activity_id": pa.int64(), "molecule_id": pa.int64(), "target_id": pa.int64()}
    first_line = 2 + 10 * seq
    table = pa.table({LINE: pa.array(range(first_line, first_line + len(rows)), pa.int64()),
                      **{c: pa.array([r.get(c) for r in rows], types.get(c, pa.string()))
                         for c in ("activity_id", "activity_type", "molecule_id", "target_id",
                                   "target_name")}})
    return RowBatch(ingest, seq, Mode.UPSERT, table, time.time())


def test_batches_the_database_refuses_never_stop_the_partition(make_pipeline, database_url):
    """Batches from another producer, no contract applied. One holds a row no database takes
    (a target without a name): that row is rejected with the database's reason, the rest of
    the ingest lands. Another ingest's batch meets a database that cannot take it at all (a
    column gone): that ingest fails, naming the batch, and the ingests after it still land."""
    p = make_pipeline(database_url=database_url)
    good = [{"activity_id": i, "activity_type": "IC50", "molecule_id": 10, "target_id": 100 + i,
             "target_name": f"T{i}"} for i in range(1, 21)]
    bad = [dict(r) for r in good]
    bad[4]["target_name"] = None
    engine = make_engine(database_url)
    try:
        create_schema(engine)
        _publish(p, [_typed(bad[:10], "refused-rows", 0), _typed(bad[10:], "refused-rows", 1)])
        reports = p.work("refused-rows")
        assert reports[-1]["rows_written"] == 19 and reports[-1]["rows_rejected"] == 1
        (rejection,) = p.read_topic(p.settings.topics.rejected)
        assert rejection["line"] == 6 and rejection["row"]["activity_id"] == "5"
        assert "the database refused the row (batch 0)" in rejection["reason"]

        worker = Worker(p.settings)  # (its start would repair what follows)
        with engine.begin() as conn:  # the next ingest's rows cannot go in at all
            conn.exec_driver_sql("ALTER TABLE target RENAME COLUMN name TO gone")
        more = [{**r, "activity_id": r["activity_id"] + 100} for r in good]
        _publish(p, [_typed(more[:10], "broken", 0), _typed(more[10:], "broken", 1)])
        worker.run(until_complete=["broken"], idle_timeout_s=60)
        assert [a.ingest_id for a in worker.failed] == ["broken"]
        failed = [e for e in p.read_topic(p.settings.topics.events)
                  if e["type"] == "failed" and e["ingest_id"] == "broken"]
        assert len(failed) == 1 and failed[0]["stage"] == "apply"
        assert failed[0]["reason"].startswith("batch 0: ")

        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE target RENAME COLUMN gone TO name")
        after = [{**r, "activity_id": r["activity_id"] + 200} for r in good]
        _publish(p, [_typed(after, "after", 0)])
        assert p.work("after")[-1]["rows_written"] == 20
    finally:
        engine.dispose()
