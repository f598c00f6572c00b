"""The CSV row contract (ChEMBL activities): columns, their types, and vectorized validation.

`validate` takes a chunk of rows as strings (empty string = empty field) and returns the typed
rows that satisfy the contract plus one `Rejection` (line number and reason) per row that does
not. Checks run as Arrow compute kernels over whole columns; only the few bad rows are visited
one by one, to word their reasons. A chunk holds only the columns its file has: an optional
column the file lacks stays absent all the way to the worker, which then leaves that column of
existing rows as it is.

Where each rule comes from (ChEMBL's schema documentation, chembl_36 `schema_documentation.txt`
and the chembl_23 schema.html; the data deposition guide, chembl.gitbook.io):

    column              ChEMBL's column (type)                        rule here
    activity_id         ACTIVITIES.ACTIVITY_ID (NUMBER, not null)     whole number, required
    activity_type       ACTIVITIES.STANDARD_TYPE (VARCHAR2(250))      required, ≤ 250 chars
    activity_units      ACTIVITIES.STANDARD_UNITS (VARCHAR2(100))     ≤ 100 chars
    activity_value      ACTIVITIES.STANDARD_VALUE (NUMBER)            finite, any sign or size
    activity_relation   ACTIVITIES.STANDARD_RELATION (VARCHAR2(50))   = < > <= >= ~ << >> (the
                                                                      guide's symbols) or empty
    molecule_id         MOLECULE_DICTIONARY.MOLREGNO (NUMBER)         whole number, required
    molecule_name       MOLECULE_DICTIONARY.PREF_NAME (VARCHAR2(255)) ≤ 255 chars
    molecule_max_phase  MOLECULE_DICTIONARY.MAX_PHASE (NUMBER(2,1))   4 3 2 1 0.5 -1 or empty
                                                                      (`4` or `4.0`; 0 before
                                                                      ChEMBL 32)
    molecule_structure  COMPOUND_STRUCTURES.CANONICAL_SMILES          ≤ 4000 chars
                        (VARCHAR2(4000))
    molecule_inchi_key  COMPOUND_STRUCTURES.STANDARD_INCHI_KEY        a 27-character InChIKey
                        (VARCHAR2(27))
    target_id           TARGET_DICTIONARY.TID (NUMBER, not null)      whole number, required
    target_name         TARGET_DICTIONARY.PREF_NAME (VARCHAR2(200))   required, ≤ 200 chars
    target_organism     TARGET_DICTIONARY.ORGANISM (VARCHAR2(150))    ≤ 150 chars

The database's columns take their widths from `Column.width` (molstream.db), so a value the
contract lets through fits on SQLite and PostgreSQL alike.
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
    width: int | None = None  # text: the most characters ChEMBL's own column holds


# In the order of ChEMBL's activities export.
COLUMNS: tuple[Column, ...] = (
    Column("activity_id", INT, True),
    Column("activity_type", TEXT, True, 250),
    Column("activity_units", TEXT, False, 100),
    Column("activity_value", FLOAT, False),
    Column("activity_relation", TEXT, False, 50),
    Column("molecule_id", INT, True),
    Column("molecule_name", TEXT, False, 255),
    Column("molecule_max_phase", FLOAT, False),
    Column("molecule_structure", TEXT, False, 4000),
    Column("molecule_inchi_key", TEXT, False, 27),
    Column("target_id", INT, True),
    Column("target_name", TEXT, True, 200),
    Column("target_organism", TEXT, False, 150),
)
COLUMN_NAMES = tuple(c.name for c in COLUMNS)
REQUIRED_COLUMNS = tuple(c.name for c in COLUMNS if c.required)
WIDTHS = {c.name: c.width for c in COLUMNS if c.width is not None}
LINE = "_line"  # line number of the row in its file (the header is line 1)

MAX_PHASES = (-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 4.0)  # 0 appears in exports before ChEMBL 32
RELATIONS = ("=", "<", ">", "<=", ">=", "~", "<<", ">>")
_ID_RE = r"^[0-9]{1,18}$"  # fits int64 without overflow
# Finite decimal numbers only: NaN and infinities are refused by the pattern itself.
_FLOAT_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$"
_INCHI_KEY_RE = r"^[A-Z]{14}-[A-Z]{10}-[A-Z]$"

_ARROW_TYPES = {INT: pa.int64(), FLOAT: pa.float64(), TEXT: pa.string()}
ROW_SCHEMA = pa.schema(
    [pa.field(LINE, pa.int64())] + [pa.field(c.name, _ARROW_TYPES[c.kind]) for c in COLUMNS])


def present_columns(names: Iterable[str]) -> tuple[Column, ...]:
    """The contract's columns among `names`, in the contract's order."""
    names = set(names)
    return tuple(c for c in COLUMNS if c.name in names)


class ContractError(ValueError):
    """The file as a whole breaks the contract (e.g. a required column is missing)."""


@dataclass(frozen=True)
class Rejection:
    line: int
    reason: str
    row: dict[str, str]

    def as_message(self, ingest_id: str) -> dict:
        return {"ingest_id": ingest_id, "line": self.line, "reason": self.reason, "row": self.row}


# A rejection's reason, as a bounded label for metrics: the first entry whose words the reason
# holds, in this order (a row can fail several checks; its reason lists them, first one first).
REASON_CLASSES = (
    ("the database refused", "database"),
    ("duplicate activity_id", "duplicate"),
    (" fields, found ", "field_count"),
    ("not valid UTF-8", "encoding"),
    ("read like rows of their own", "unclosed_quote"),
    (" is longer than ", "too_long"),
    (" contains a NUL byte", "nul_byte"),
    (" is empty", "empty"),
    (" is not a whole number", "not_a_number"),
    (" is not a finite number", "not_a_number"),
    (" is not one of ", "not_in_vocabulary"),
    (" is not a 27-character InChIKey", "not_in_vocabulary"),
)


def reason_class(reason: str) -> str:
    """The class of a rejection's reason (REASON_CLASSES), "other" for none of them."""
    first = reason.split("; ", 1)[0]
    return next((cls for words, cls in REASON_CLASSES if words in first), "other")


def validate(
    chunk: pa.Table, *, max_field_bytes: int, delimiter: str = ","
) -> tuple[pa.Table, list[Rejection]]:
    """Split a chunk of string rows (with `_line`) into typed valid rows and rejections. The
    chunk holds the required columns and any of the optional ones; so does the result."""
    n = chunk.num_rows
    columns = present_columns(chunk.column_names)
    reasons: list[tuple[np.ndarray, str]] = []  # (bad mask, reason), first failing check wins

    def fail(mask: pa.Array | pa.ChunkedArray, reason: str) -> None:
        arr = np.asarray(pc.fill_null(mask, False), dtype=bool)
        if arr.any():
            reasons.append((arr, reason))

    typed: dict[str, pa.Array] = {}
    for col in columns:
        values = chunk.column(col.name)
        lengths = pc.binary_length(values)
        empty = pc.equal(lengths, 0)
        # Per-row masks only for the rare column that holds an offender at all.
        longest = pc.max(lengths).as_py() or 0
        if longest > max_field_bytes:
            fail(pc.greater(lengths, max_field_bytes),
                 f"{col.name} is longer than {max_field_bytes} bytes")
        # Bytes bound characters from above: count characters only where bytes exceed.
        if col.width is not None and longest > col.width:
            fail(pc.greater(pc.utf8_length(values), col.width),
                 f"{col.name} is longer than {col.width} characters (the width of ChEMBL's "
                 "column and of the database's)")
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
            fail(pa.array(_holds_rows(values, len(columns), delimiter)),
                 f"{col.name} holds lines that read like rows of their own (a quote opened in "
                 "this row is closed only in a later one)")
            typed[col.name] = pc.if_else(empty, pa.scalar(None, pa.string()), values)

    if (phase := typed.get("molecule_max_phase")) is not None:
        fail(pc.and_(pc.is_valid(phase), pc.invert(pc.is_in(phase, pa.array(MAX_PHASES)))),
             f"molecule_max_phase is not one of {', '.join(f'{p:g}' for p in MAX_PHASES)}")
    if (relation := typed.get("activity_relation")) is not None:
        fail(pc.and_(pc.is_valid(relation), pc.invert(pc.is_in(relation, pa.array(RELATIONS)))),
             f"activity_relation is not one of {' '.join(RELATIONS)}")
    if (inchi := typed.get("molecule_inchi_key")) is not None:
        fail(pc.and_(pc.is_valid(inchi),
                     pc.invert(pc.match_substring_regex(inchi, _INCHI_KEY_RE))),
             "molecule_inchi_key is not a 27-character InChIKey")
    if (value := typed.get("activity_value")) is not None:
        fail(pc.and_(pc.is_valid(value), pc.invert(pc.is_finite(value))),
             "activity_value is not a finite number")

    bad = np.zeros(n, dtype=bool)
    for mask, _ in reasons:
        bad |= mask
    rows = pa.table([chunk.column(LINE)] + [typed[c.name] for c in columns],
                    schema=pa.schema([ROW_SCHEMA.field(LINE)]
                                     + [ROW_SCHEMA.field(c.name) for c in columns]))
    if not bad.any():
        return rows, []
    rejections = _word_rejections(chunk, np.flatnonzero(bad), reasons, columns)
    return rows.filter(pa.array(~bad)), rejections


def _holds_rows(values: pa.ChunkedArray, fields: int, delimiter: str) -> np.ndarray:
    """Values with a line break followed by a line holding a whole row's delimiters: a quote left
    open swallowed the rows after it up to the next quote, which CSV cannot tell from a
    (legitimate) multi-line value unless we look. Only the rare values with a line break are
    visited one by one, and a chunk without a line break anywhere costs one scan of its bytes."""
    out = np.zeros(len(values), dtype=bool)
    if not holds_byte(values, b"\n"):
        return out
    breaks = np.asarray(pc.fill_null(pc.match_substring(values, "\n"), False), dtype=bool)
    for i in np.flatnonzero(breaks):
        lines = values[int(i)].as_py().split("\n")[1:]
        out[i] = any(line.count(delimiter) >= fields - 1 for line in lines)
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
    chunk: pa.Table, bad_rows: Iterable[int], reasons: list[tuple[np.ndarray, str]],
    columns: tuple[Column, ...],
) -> list[Rejection]:
    out = []
    for i in bad_rows:
        why = "; ".join(reason for mask, reason in reasons if mask[i])
        row = {c.name: _preview(chunk.column(c.name)[i].as_py()) for c in columns}
        out.append(Rejection(int(chunk.column(LINE)[i].as_py()), why, row))
    return out


def _preview(value: str | None, limit: int = 200) -> str:
    value = value or ""
    return value if len(value) <= limit else f"{value[:limit]}…(+{len(value) - limit} chars)"
