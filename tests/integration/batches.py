"""Row batches as the worker receives them, and databases to apply them to: shared by the
applier's tests (pytest puts this directory on sys.path for its tests)."""

from __future__ import annotations

import time

import pyarrow as pa
from molstream.config import Mode
from molstream.contract import COLUMN_NAMES, LINE, validate
from molstream.db import DATA_TABLES
from molstream.messages import RowBatch, decode, encode_batch
from sqlalchemy import func, select

ROW = {
    "activity_id": "1", "molecule_id": "10", "molecule_name": "ASPIRIN", "molecule_max_phase": "4",
    "molecule_structure": "CC(=O)Oc1ccccc1C(=O)O", "molecule_inchi_key": "",
    "target_id": "100", "target_name": "COX-1", "target_organism": "Homo sapiens",
    "activity_type": "IC50", "activity_units": "nM", "activity_value": "12.5",
    "activity_relation": "=",
}


def make_batch(rows: list[dict], *, seq: int = 0, mode: Mode = Mode.UPSERT,
               ingest: str = "i1") -> RowBatch:
    chunk = pa.table({LINE: pa.array(range(2, 2 + len(rows)), pa.int64()),
                      **{c: pa.array([r[c] for r in rows], pa.string()) for c in COLUMN_NAMES}})
    valid, rejected = validate(chunk, max_field_bytes=10_000)
    assert rejected == []
    # Through the wire format, as the worker receives it.
    return decode(*encode_batch(RowBatch(ingest, seq, mode, valid, time.time())))


def count(engine, name: str) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(DATA_TABLES[name])).scalar_one()
