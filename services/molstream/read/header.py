"""A file's header row: its delimiter (given or detected), its names matched to the contract,
and the checks that fail a file at once, naming what was found and what was expected."""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from pathlib import Path

from ..contract import COLUMNS, REQUIRED_COLUMNS, ContractError
from . import columns, dialect
from .dialect import DETECT, Format
from .errors import ReadError
from .source import MAX_ROW_BYTES, _Source


@dataclass(frozen=True)
class Header:
    fmt: Format  # with the delimiter found
    names: list[str]  # per field, the name Arrow's reader gives it: the contract's, if any
    warnings: list[str]


def read_header(path: Path, max_bytes: int | None = None, fmt: Format = DETECT) -> Header:
    line = _first_line(path, max_bytes, fmt.member)
    given = fmt.column_map
    delimiter = fmt.delimiter or dialect.detect(line, lambda f: columns.known(f, given))
    fields = [f.strip() for f in dialect.split(line, delimiter)]
    mapped = columns.map_header(fields, given)
    missing = [c for c in REQUIRED_COLUMNS if c not in mapped.columns]
    if missing:
        raise ContractError(_missing(missing, line, fields, delimiter, fmt))
    warnings = list(mapped.warnings)
    if extra := [f for f, c in zip(fields, mapped.columns, strict=True) if c is None]:
        warnings.append(f"ignoring column(s) not in the contract: {', '.join(extra)}")
    if absent := [c.name for c in COLUMNS if not c.required and c.name not in mapped.columns]:
        warnings.append(f"optional column(s) absent, left as they are in existing rows (empty "
                        f"in new ones): {', '.join(absent)}")
    return Header(replace(fmt, delimiter=delimiter), mapped.arrow_names, warnings)


def _first_line(path: Path, max_bytes: int | None, member: str | None) -> str:
    with io.BufferedReader(_Source(path, max_bytes, member=member)) as f:
        first = f.readline(MAX_ROW_BYTES)
    if not first.strip():
        raise ReadError("the file is empty: no header row")
    try:
        return first.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ReadError("the header row is not valid UTF-8") from None


def _missing(missing: list[str], line: str, fields: list[str], delimiter: str,
             fmt: Format) -> str:
    """Why the header lacks a required column: what it holds (its names only when they look
    like column names: columns.describe), split how, and what would do."""
    found = f"the header has {columns.describe(fields)} when split on {dialect.name(delimiter)}"
    hint = ""
    for other in dialect.DELIMITERS:
        if other != delimiter:
            split = [f.strip() for f in dialect.split(line, other)]
            try:
                fits = columns.map_header(split, fmt.column_map)
            except ContractError:
                continue
            if all(c in fits.columns for c in REQUIRED_COLUMNS):
                hint = (f"; it splits into {len(split)} columns on {dialect.name(other)}, the "
                        f"required ones among them: the file looks {dialect.separated(other)}: "
                        "set spec.format.delimiter (--delimiter) to match, or leave it to "
                        "detection")
                break
    why = ""
    if "activity_id" in missing and not hint:
        why = ("; activity_id is an activity's natural key: a file without it (an export of "
               "ChEMBL's web interface has none) cannot be ingested")
    # Worded as before for any count: callers may match "required column ... is missing".
    return (f"required column {', '.join(map(repr, missing))} is missing: {found}{hint}; "
            f"expected the columns {', '.join(REQUIRED_COLUMNS)} (any case; ChEMBL's own names "
            "such as standard_type, molregno and tid too; others through spec.columns, "
            f"--column SOURCE=COLUMN){why}")
