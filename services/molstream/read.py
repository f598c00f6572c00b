"""Read a downloaded CSV into HDF5 on disk with vaex, then hand it out in chunks.

Parsing uses Arrow's streaming CSV reader rather than pandas (vaex's `from_csv` default):
pandas' C parser silently truncates rows with too many fields and pads rows with too few,
while Arrow reports each one with its line number, which the contract needs. Each parsed block
is exported by vaex to an HDF5 file, and the blocks are opened together as one memory-mapped
vaex DataFrame, so memory stays flat whatever the file size, and the row count is known before
the first row is published. Structural problems (no header, an unterminated quote, a row bigger
than a block) fail the whole file here, before anything reaches Kafka.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import vaex

from .contract import COLUMN_NAMES, LINE, Rejection, check_header

log = logging.getLogger(__name__)

BLOCK_BYTES = 16 * 1024 * 1024  # also the largest row the reader accepts
EXPORT_BYTES = 32 * 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"


class ReadError(ValueError):
    """The file cannot be read as CSV at all."""


@dataclass
class Converted:
    """A CSV file converted to HDF5: rows as strings plus their line numbers."""

    df: vaex.DataFrame
    rows: int
    rejections: list[Rejection] = field(default_factory=list)  # rows the parser refused
    warnings: list[str] = field(default_factory=list)

    def __enter__(self) -> Converted:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.df.close()

    def chunks(self, size: int) -> Iterator[pa.Table]:
        for _, _, table in self.df.to_arrow_table(chunk_size=size, parallel=False):
            yield table.select([LINE, *COLUMN_NAMES])


def decompress_if_gzip(path: Path, out: Path, *, max_bytes: int) -> Path:
    """Return a path to the plain CSV, inflating gzip input with a cap on its inflated size."""
    with open(path, "rb") as f:
        if f.read(2) != GZIP_MAGIC:
            return path
    written = 0
    with gzip.open(path, "rb") as src, open(out, "wb") as dst:
        while block := src.read(1 << 20):
            written += len(block)
            if written > max_bytes:
                raise ReadError(
                    f"{path.name} inflates to more than {max_bytes} bytes "
                    "(MOLSTREAM_MAX_DECOMPRESSED_BYTES): refusing it as a possible gzip bomb")
            dst.write(block)
    return out


def read_header(path: Path) -> list[str]:
    with open(path, "rb") as f:
        first = f.readline(BLOCK_BYTES)
    if not first.strip():
        raise ReadError("the file is empty: no header row")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ReadError("the header row is not valid UTF-8") from None
    return [h.strip() for h in next(csv.reader(io.StringIO(text)))]


def convert(
    csv_path: Path, hdf5_dir: Path, *, on_block: Callable[[int], None] | None = None
) -> Converted:
    """Parse `csv_path` into HDF5 chunk files under `hdf5_dir`; return them as one DataFrame."""
    header = read_header(csv_path)
    warnings = check_header(header)
    present = [name for name in COLUMN_NAMES if name in header]
    hdf5_dir.mkdir(parents=True, exist_ok=True)
    for stale in hdf5_dir.glob("block-*.hdf5"):
        stale.unlink()

    skipped: list[Rejection] = []
    unterminated: list[int] = []

    def invalid_row(row: pacsv.InvalidRow) -> str:
        if _ends_inside_quotes(row.text or ""):
            # Arrow read to the end of the file looking for the closing quote: this "row" holds
            # every line after the quote, which must not pass for one rejected row.
            unterminated.append(row.number or -1)
        skipped.append(Rejection(row.number or -1, f"expected {row.expected_columns} fields, "
                                 f"found {row.actual_columns}", {"text": (row.text or "")[:200]}))
        return "skip"

    reader = pacsv.open_csv(
        csv_path,
        read_options=pacsv.ReadOptions(use_threads=False, block_size=BLOCK_BYTES,
                                       column_names=header, skip_rows=1),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid_row),
        convert_options=pacsv.ConvertOptions(
            include_columns=present, column_types={n: pa.binary() for n in present},
            strings_can_be_null=False, quoted_strings_can_be_null=False),
    )
    paths: list[Path] = []
    rejections: list[Rejection] = []
    pending: list[pa.Table] = []
    next_line, rows = 2, 0

    def flush() -> None:
        # vaex's export has a fixed cost per call: export a few large blocks, not many small.
        if pending:
            path = hdf5_dir / f"block-{len(paths):06d}.hdf5"
            vaex.from_arrow_table(pa.concat_tables(pending)).export_hdf5(str(path))
            paths.append(path)
            pending.clear()

    try:
        for batch in _batches(reader, csv_path):
            n_skipped = sum(1 for r in skipped if r.line >= next_line)
            lines = np.arange(next_line, next_line + batch.num_rows + n_skipped)
            if n_skipped:
                lines = lines[~np.isin(lines, [r.line for r in skipped[-n_skipped:]])]
            next_line += batch.num_rows + n_skipped
            table, bad_utf8 = _to_strings(pa.Table.from_batches([batch]), present, lines)
            rejections.extend(bad_utf8)
            if table.num_rows:
                pending.append(table)
                rows += table.num_rows
            if sum(t.nbytes for t in pending) >= EXPORT_BYTES:
                flush()
            if on_block:
                on_block(rows)
        flush()
    finally:
        reader.close()
    if unterminated:
        remove(paths)
        raise ReadError(f"{csv_path.name} is not valid CSV: the quoted field opened on line "
                        f"{unterminated[0]} is never closed (unterminated quote)")
    rejections = sorted(skipped + rejections, key=lambda r: r.line)
    df = vaex.open_many([str(p) for p in paths]) if paths else vaex.from_arrow_table(
        _to_strings(pa.table({n: pa.array([], pa.binary()) for n in present}), present,
                    np.array([], dtype=np.int64))[0])
    return Converted(df, rows, rejections, warnings)


_QUOTING = re.compile(r'[",\r\n]')


def _ends_inside_quotes(text: str) -> bool:
    """Whether a row's text ends inside a quoted field (RFC 4180: a quote opens one only at the
    start of a field, and `""` inside one is a literal quote)."""
    inside, field_start, skip_to = False, 0, 0
    for m in _QUOTING.finditer(text):
        i = m.start()
        if i < skip_to:
            continue
        if inside:
            if m.group() == '"':
                if text.startswith('"', i + 1):
                    skip_to = i + 2  # an escaped quote
                else:
                    inside = False
        elif m.group() == '"':
            inside = i == field_start
        else:
            field_start = i + 1
    return inside


def _batches(reader: pacsv.CSVStreamingReader, path: Path) -> Iterator[pa.RecordBatch]:
    while True:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as e:
            raise ReadError(f"{path.name} is not valid CSV: {e}") from None


def _to_strings(table: pa.Table, present: list[str], lines: np.ndarray
                ) -> tuple[pa.Table, list[Rejection]]:
    """Decode UTF-8 (rejecting rows that are not), add absent optional columns as empty."""
    bad = np.zeros(table.num_rows, dtype=bool)
    columns = {}
    for name in present:
        col = table.column(name)
        try:
            columns[name] = col.cast(pa.string())
        except pa.ArrowInvalid:
            values = col.to_pylist()
            decoded = []
            for i, v in enumerate(values):
                try:
                    decoded.append(v.decode("utf-8"))
                except UnicodeDecodeError:
                    bad[i] = True
                    decoded.append("")
            columns[name] = pa.array(decoded, pa.string())
    rejections = [
        Rejection(int(lines[i]), "the row is not valid UTF-8",
                  {n: table.column(n)[i].as_py().decode("utf-8", "replace")[:200] for n in present})
        for i in np.flatnonzero(bad)
    ]
    empty = pa.array([""] * table.num_rows, pa.string())
    out = pa.table({LINE: pa.array(lines, pa.int64()),
                    **{n: columns.get(n, empty) for n in COLUMN_NAMES}})
    return (out.filter(pa.array(~bad)) if bad.any() else out), rejections


def remove(paths: list[Path]) -> None:
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
