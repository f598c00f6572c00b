"""The CSV row contract (ChEMBL activities): columns, their types, and vectorized validation.

`validate` takes a chunk of rows as strings (empty string = empty field) and returns the typed
rows that satisfy the contract plus one `Rejection` (line number and reason) per row that does
not. Checks run as Arrow compute kernels over whole columns; only the few bad rows are visited
one by one, to word their reasons.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

INT, FLOAT, TEXT = "int", "float", "text"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    required: bool  # may not be empty; a file without this column fails at once


COLUMNS: tuple[Column, ...] = (
    Column("activity_id", INT, True),
    Column("molecule_id", INT, True),
    Column("molecule_name", TEXT, False),
    Column("molecule_max_phase", FLOAT, False),
    Column("molecule_structure", TEXT, False),
    Column("molecule_inchi_key", TEXT, False),
    Column("target_id", INT, True),
    Column("target_name", TEXT, True),
    Column("target_organism", TEXT, False),
    Column("activity_type", TEXT, True),
    Column("activity_units", TEXT, False),
    Column("activity_value", FLOAT, False),
    Column("activity_relation", TEXT, False),
)
COLUMN_NAMES = tuple(c.name for c in COLUMNS)
REQUIRED_COLUMNS = tuple(c.name for c in COLUMNS if c.required)
LINE = "_line"  # line number of the row in its file (the header is line 1)

MAX_PHASES = (-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 4.0)  # 0 appears in exports before ChEMBL 32
RELATIONS = ("=", "<", ">", "<=", ">=", "~")
_ID_RE = r"^[0-9]{1,18}$"  # fits int64 without overflow
# Finite decimal numbers only: NaN and infinities are refused by the pattern itself.
_FLOAT_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$"
_INCHI_KEY_RE = r"^[A-Z]{14}-[A-Z]{10}-[A-Z]$"

ROW_SCHEMA = pa.schema(
    [pa.field(LINE, pa.int64())]
    + [
        pa.field(c.name, {INT: pa.int64(), FLOAT: pa.float64(), TEXT: pa.string()}[c.kind])
        for c in COLUMNS
    ]
)


class ContractError(ValueError):
    """The file as a whole breaks the contract (e.g. a required column is missing)."""


@dataclass(frozen=True)
class Rejection:
    line: int
    reason: str
    row: dict[str, str]

    def as_message(self, ingest_id: str) -> dict:
        return {"ingest_id": ingest_id, "line": self.line, "reason": self.reason, "row": self.row}


def check_header(header: list[str]) -> list[str]:
    """Validate a header row; return warnings (extra columns) or raise ContractError."""
    seen: set[str] = set()
    twice = sorted({h for h in header if h in seen or seen.add(h)})
    if twice:
        names = ", ".join(map(repr, twice))
        raise ContractError(f"column {names} appears more than once in the header")
    missing = [name for name in REQUIRED_COLUMNS if name not in seen]
    if missing:
        hint = ""
        if len(header) == 1 and any(d in header[0] for d in ";\t|"):
            hint = (" (the header has one column: is the file delimited by something other than"
                    " commas?)")
        raise ContractError(f"required column {', '.join(map(repr, missing))} is missing{hint}")
    warnings = []
    extra = [h for h in header if h not in COLUMN_NAMES]
    if extra:
        warnings.append(f"ignoring column(s) not in the contract: {', '.join(extra)}")
    absent = [c.name for c in COLUMNS if not c.required and c.name not in seen]
    if absent:
        warnings.append(f"optional column(s) absent, read as empty: {', '.join(absent)}")
    return warnings


def validate(
    chunk: pa.Table, *, max_field_bytes: int
) -> tuple[pa.Table, list[Rejection]]:
    """Split a chunk of string rows (with `_line`) into typed valid rows and rejections."""
    n = chunk.num_rows
    reasons: list[tuple[np.ndarray, str]] = []  # (bad mask, reason), first failing check wins

    def fail(mask: pa.Array | pa.ChunkedArray, reason: str) -> None:
        arr = np.asarray(pc.fill_null(mask, False), dtype=bool)
        if arr.any():
            reasons.append((arr, reason))

    typed: dict[str, pa.Array] = {}
    for col in COLUMNS:
        values = chunk.column(col.name)
        lengths = pc.binary_length(values)
        empty = pc.equal(lengths, 0)
        # Per-row masks only for the rare column that holds an offender at all.
        if (pc.max(lengths).as_py() or 0) > max_field_bytes:
            fail(pc.greater(lengths, max_field_bytes),
                 f"{col.name} is longer than {max_field_bytes} bytes")
        if holds_byte(values, b"\x00"):
            fail(pc.match_substring(values, "\x00"), f"{col.name} contains a NUL byte")
        if col.required:
            fail(empty, f"{col.name} is empty")
        if col.kind == INT:
            ok = pc.match_substring_regex(values, _ID_RE)
            fail(pc.and_not(pc.invert(ok), empty), f"{col.name} is not a whole number")
            typed[col.name] = _cast_where(values, ok, pa.int64())
        elif col.kind == FLOAT:
            ok = pc.match_substring_regex(values, _FLOAT_RE)
            fail(pc.and_not(pc.invert(ok), empty), f"{col.name} is not a finite number")
            typed[col.name] = _cast_where(values, ok, pa.float64())
        else:
            fail(pa.array(_holds_rows(values)), f"{col.name} holds lines that read like rows "
                 "of their own (a quote opened in this row is closed only in a later one)")
            typed[col.name] = pc.if_else(empty, pa.scalar(None, pa.string()), values)

    phase = typed["molecule_max_phase"]
    fail(pc.and_(pc.is_valid(phase), pc.invert(pc.is_in(phase, pa.array(MAX_PHASES)))),
         f"molecule_max_phase is not one of {', '.join(f'{p:g}' for p in MAX_PHASES)}")
    relation = typed["activity_relation"]
    fail(pc.and_(pc.is_valid(relation), pc.invert(pc.is_in(relation, pa.array(RELATIONS)))),
         f"activity_relation is not one of {' '.join(RELATIONS)}")
    inchi = typed["molecule_inchi_key"]
    fail(pc.and_(pc.is_valid(inchi), pc.invert(pc.match_substring_regex(inchi, _INCHI_KEY_RE))),
         "molecule_inchi_key is not a 27-character InChIKey")
    value = typed["activity_value"]
    fail(pc.and_(pc.is_valid(value), pc.invert(pc.is_finite(value))),
         "activity_value is not a finite number")

    bad = np.zeros(n, dtype=bool)
    for mask, _ in reasons:
        bad |= mask
    rows = pa.table([chunk.column(LINE)] + [typed[c.name] for c in COLUMNS], schema=ROW_SCHEMA)
    if not bad.any():
        return rows, []
    rejections = _word_rejections(chunk, np.flatnonzero(bad), reasons)
    return rows.filter(pa.array(~bad)), rejections


def _holds_rows(values: pa.ChunkedArray) -> np.ndarray:
    """Values with a line break followed by a line holding a whole row's commas: a quote left
    open swallowed the rows after it up to the next quote, which CSV cannot tell from a
    (legitimate) multi-line value unless we look. Only the rare values with a line break are
    visited one by one, and a chunk without a line break anywhere costs one scan of its bytes."""
    out = np.zeros(len(values), dtype=bool)
    if not holds_byte(values, b"\n"):
        return out
    breaks = np.asarray(pc.fill_null(pc.match_substring(values, "\n"), False), dtype=bool)
    for i in np.flatnonzero(breaks):
        lines = values[int(i)].as_py().split("\n")[1:]
        out[i] = any(line.count(",") >= len(COLUMNS) - 1 for line in lines)
    return out


def holds_byte(values: pa.ChunkedArray | pa.Array, byte: bytes) -> bool:
    """Whether the bytes of a string column's values hold `byte` (one memchr over each
    chunk's value bytes, against a per-row kernel and mask)."""
    return any(_chunk_holds_byte(a, byte) for a in getattr(values, "chunks", [values]))


def _chunk_holds_byte(array: pa.Array, byte: bytes) -> bool:
    if len(array) == 0:
        return False
    _, offsets, data = array.buffers()
    width = np.int64 if pa.types.is_large_string(array.type) else np.int32
    start, end = np.frombuffer(offsets, width)[[array.offset, array.offset + len(array)]]
    return data is not None and byte in memoryview(data)[start:end].tobytes()


def _cast_where(values: pa.ChunkedArray, ok: pa.ChunkedArray, to: pa.DataType) -> pa.Array:
    """Cast the values where `ok` (their pattern matched) to `to`; everything else is null."""
    return pc.cast(pc.if_else(ok, values, pa.scalar(None, pa.string())), to)


def _word_rejections(
    chunk: pa.Table, bad_rows: Iterable[int], reasons: list[tuple[np.ndarray, str]]
) -> list[Rejection]:
    out = []
    for i in bad_rows:
        why = "; ".join(reason for mask, reason in reasons if mask[i])
        row = {name: _preview(chunk.column(name)[i].as_py()) for name in COLUMN_NAMES}
        out.append(Rejection(int(chunk.column(LINE)[i].as_py()), why, row))
    return out


def _preview(value: str | None, limit: int = 200) -> str:
    value = value or ""
    return value if len(value) <= limit else f"{value[:limit]}…(+{len(value) - limit} chars)"
