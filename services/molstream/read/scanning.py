"""Pass 1: the whole file read once, converting nothing, to learn that it can be read as a whole
and how many rows it holds (`scan`, giving a `Scan`). The module is not named `scan`: that name,
in the package, is the function."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..contract import COLUMN_NAMES, ContractError, Rejection
from . import source
from .dialect import DETECT, Format
from .errors import ReadError
from .header import read_header
from .lines import LineMap, _LineBreaks
from .parse import _parse, _RowTooBig, _Unterminated
from .source import TooLarge, _inflate_all

log = logging.getLogger(__package__)  # "molstream.read", as before the package split

BLOCK_BYTES = 4 * 1024 * 1024


@dataclass
class Scan:
    """What a first pass over a file found, before anything is converted or published."""

    path: Path
    header: list[str]  # per field, the name the reader gives it: the contract's, if any
    warnings: list[str]
    rows: int  # rows the parser accepted (a few may still turn out not to be UTF-8)
    rejections: list[Rejection]  # rows the parser refused (a wrong number of fields)
    block: int  # a block size the file's largest row fits in
    max_decompressed_bytes: int | None
    fmt: Format = Format(delimiter=",")  # with its delimiter found
    line_map: LineMap = field(default_factory=LineMap)

    @property
    def rows_total(self) -> int:
        return self.rows + len(self.rejections)


def scan(csv_path: Path, *, max_decompressed_bytes: int | None = None,
         on_block: Callable[[int], None] | None = None, fmt: Format = DETECT) -> Scan:
    """Pass 1: read the whole file (plain or compressed) once, converting nothing, to learn that
    it can be read as a whole (header, quoting, row sizes, the inflation cap) and how many rows
    it holds. Raises ReadError or ContractError for a file that cannot be; once this returns,
    the second pass (`Converter`) meets the same bytes and can publish as it goes."""
    try:
        return _scan_growing_blocks(csv_path, max_decompressed_bytes, on_block, fmt)
    except TooLarge:
        raise
    except (ReadError, ContractError):
        # A bomb is refused as one whatever else is wrong with what it holds (a header
        # without the required columns, a "row" of zeros longer than any block...), as when
        # the file was inflated whole before being read: inflate the rest, up to the cap.
        try:
            _inflate_all(csv_path, max_decompressed_bytes, fmt.member)
        except TooLarge:
            raise
        except ReadError:
            pass  # the file's own fault, already told
        raise


def _scan_growing_blocks(csv_path: Path, max_decompressed_bytes: int | None,
                         on_block: Callable[[int], None] | None, fmt: Format) -> Scan:
    found = read_header(csv_path, max_decompressed_bytes, fmt)
    header, warnings, fmt = found.names, found.warnings, found.fmt
    present = [name for name in COLUMN_NAMES if name in header]
    block = BLOCK_BYTES
    while True:
        skipped: list[Rejection] = []
        breaks = _LineBreaks()
        rows = 0
        try:
            unterminated: _Unterminated | None = None
            try:
                # One column is enough: the parser tokenizes every field anyway.
                for batch, _ in _parse(csv_path, header, present[:1], block,
                                       max_decompressed_bytes, skipped, fmt, breaks=breaks):
                    rows += batch.num_rows
                    if on_block:
                        on_block(rows)
            except _Unterminated as e:
                unterminated = e
            if breaks.lines == rows + len(skipped) + 1:  # a line per row: Arrow's numbers hold
                if unterminated:
                    raise unterminated
                return Scan(csv_path, header, warnings, rows, skipped, block,
                            max_decompressed_bytes, fmt)
            # Values holding line breaks or empty lines: Arrow's row numbers are not the
            # editor's line numbers. A pass with every column (any may hold a line break)
            # tells which rows span several lines.
            log.info("%s: values hold line breaks, or lines are empty: reading the file once "
                     "more to number its lines", csv_path.name)
            skipped, line_map = [], LineMap()
            for _ in _parse(csv_path, header, header, block,
                            max_decompressed_bytes, skipped, fmt, line_map=line_map):
                pass
        except _RowTooBig as e:
            if block >= source.MAX_ROW_BYTES:
                raise ReadError(f"{csv_path.name} is not valid CSV: a row is larger than "
                                f"{source.MAX_ROW_BYTES} bytes ({e})") from None
            block = min(4 * block, source.MAX_ROW_BYTES)
            log.info("%s: a row is larger than the CSV reader's block; reading it again with "
                     "%d-byte blocks", csv_path.name, block)
            continue
        skipped = [replace(r, line=line_map.line(r.line)) for r in skipped]
        if line_map.warning:
            warnings.append(line_map.warning)
        return Scan(csv_path, header, warnings, rows, skipped, block, max_decompressed_bytes,
                    fmt, line_map)
