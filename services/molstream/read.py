"""Read a downloaded CSV (gzip-compressed or not) into HDF5 on disk, then hand it out in chunks.

Parsing uses Arrow's streaming CSV reader rather than pandas (vaex's `from_csv` default):
pandas' C parser silently truncates rows with too many fields and pads rows with too few,
while Arrow reports each one with its row number, which the contract needs (LineMap turns
row numbers into the line numbers an editor shows, when the two differ). Every
EXPORT_BYTES of parsed rows are written to an HDF5 file in vaex's layout, by vaex's own column
writers fed straight from the Arrow buffers (vaex's `export_hdf5` spends ~6x longer evaluating
its DataFrame machinery around the same copy). The files are then read back with vaex, one
memory-mapped file at a time, so memory stays flat whatever the file size, and the row count is
known before the first row is published. Structural problems (no header, an unterminated quote,
a row bigger than MAX_ROW_BYTES) fail the whole file here, before anything reaches Kafka.

A gzip file is inflated on the fly as Arrow reads it (in Arrow's read-ahead thread, beside the
parser), never written out whole, and refused once it inflates past a cap. Arrow parses
BLOCK_BYTES at a time and reads several blocks ahead, so the block size sets most of the
fetcher's memory; a row that does not fit in a block makes the reader start over with larger
blocks, up to MAX_ROW_BYTES.
"""

from __future__ import annotations

import csv
import io
import logging
import mmap
import re
import shutil
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import vaex
from vaex.datatype import DataType
from vaex.hdf5.writer import ColumnWriterPrimitive, ColumnWriterString, Writer

from .contract import COLUMN_NAMES, LINE, ContractError, Rejection, check_header, holds_byte

try:  # ISA-L's gzip: the same module API, inflating ~3x faster than zlib (0.6 s vs 1.8 s/1M rows)
    from isal import igzip as gzip
except ImportError:  # pragma: no cover - a platform without isal's wheels
    import gzip

log = logging.getLogger(__name__)

BLOCK_BYTES = 4 * 1024 * 1024
MAX_ROW_BYTES = 16 * 1024 * 1024  # the largest row the reader accepts (and its largest block)
EXPORT_BYTES = 16 * 1024 * 1024
READ_AHEAD_BLOCKS = 4
GZIP_MAGIC = b"\x1f\x8b"


class ReadError(ValueError):
    """The file cannot be read as CSV at all."""


@dataclass
class Converted:
    """A CSV file converted to HDF5 files: rows as strings plus their line numbers."""

    paths: list[Path]  # in file order
    rows: int
    rejections: list[Rejection] = field(default_factory=list)  # rows the parser refused
    warnings: list[str] = field(default_factory=list)

    def __enter__(self) -> Converted:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Nothing stays open between chunks; kept for the context-manager protocol."""

    def chunks(self, size: int) -> Iterator[pa.Table]:
        """The rows in chunks of `size` (the last may be shorter)."""
        return _cut((t for path in self.paths for t in _read_back(path, size)), size)


def _read_back(path: Path, size: int) -> Iterator[pa.Table]:
    """The rows of one HDF5 file, read with vaex in chunks of at most `size`. The chunks are
    copies: closing the file unmaps it at once, so the pages read leave the process and its
    memory does not grow with the file. (A chunk still pointing into the map makes vaex's
    close fail; the map then lingers until Python's cycle collector happens to free vaex's
    objects: ~130 MB more at 1M rows.)"""
    df, table = vaex.open(str(path)), None
    try:
        for _, _, table in df.to_arrow_table(chunk_size=size, parallel=False):
            yield _copied(table.select(
                [LINE, *(n for n in COLUMN_NAMES if n in table.column_names)]))
    finally:
        del table
        df.close()


def _cut(tables: Iterator[pa.Table], size: int) -> Iterator[pa.Table]:
    """Chunks of exactly `size` rows (the last may be shorter) out of tables of any size: the
    same cuts at the same row positions however the rows were split into files."""
    pending: list[pa.Table] = []
    n = 0
    for table in tables:
        offset = 0
        while offset < table.num_rows:
            take = min(size - n, table.num_rows - offset)
            pending.append(table.slice(offset, take))
            n, offset = n + take, offset + take
            if n == size:
                yield _joined(pending)
                pending, n = [], 0
    if pending:
        yield _joined(pending)


def _copied(table: pa.Table) -> pa.Table:
    """`table` in memory of its own (concat_arrays writes new buffers, even for one chunk)."""
    return pa.Table.from_arrays([pa.concat_arrays(c.chunks) for c in table.columns],
                                names=table.column_names)


def _joined(tables: list[pa.Table]) -> pa.Table:
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


class _TooLarge(ReadError):
    """A gzip file inflating past the cap."""


class _LineBreaks:
    """The line breaks of a byte stream as it goes by, and the lines left empty (Arrow's reader
    skips those without numbering them). An empty line ends with a "\\n" that follows another
    (or follows "\\r\\n"); one inside a quoted value looks the same, which `LineMap.settle`
    tells apart by the count."""

    def __init__(self, *, find_empty: bool = False) -> None:
        self.find_empty = find_empty  # else count only, which costs less
        self.count = 0
        self.empty: list[np.ndarray] = []  # line numbers of the lines that look empty
        self._tail = np.zeros(2, np.uint8)  # the stream's last two bytes so far
        self.ends_with_break = True

    def feed(self, data: np.ndarray) -> None:
        if not len(data):
            return
        if self.find_empty:
            self._feed_finding_empty(data)
        else:
            self.count += int(np.count_nonzero(data == 10))
        self.ends_with_break = bool(data[-1] == 10)

    def _feed_finding_empty(self, data: np.ndarray) -> None:
        at = np.flatnonzero(data == 10)
        if len(at):
            def before(k: int) -> np.ndarray:
                i = at - k
                return np.where(i >= 0, data[np.maximum(i, 0)], self._tail[np.clip(i + 2, 0, 1)])
            one, two = before(1), before(2)
            empty = (one == 10) | ((one == 13) & (two == 10))
            if empty.any():
                self.empty.append(self.count + 1 + np.flatnonzero(empty))
            self.count += len(at)
        self._tail = np.concatenate([self._tail, data[-2:]])[-2:]

    @property
    def lines(self) -> int:
        return self.count + (0 if self.ends_with_break else 1)


class _Source(io.RawIOBase):
    """A CSV file's bytes as Arrow's reader pulls them, from its read-ahead thread: a gzip file
    inflated on the fly and refused past `max_bytes`; and, given a `lead`, never more than that
    many bytes ahead of what the parser has taken (`took`). Left alone, Arrow reads some thirty
    blocks ahead of the parser (~130 MB at 4 MiB blocks) whenever reading outpaces parsing."""

    WAIT_S = 0.5  # past this, read on anyway: the parser may need more than its lead for a row

    def __init__(self, path: Path, max_bytes: int | None, *, lead: int | None = None,
                 breaks: _LineBreaks | None = None) -> None:
        with open(path, "rb") as f:
            self.gzipped = f.read(2) == GZIP_MAGIC
        self._file = gzip.open(path, "rb") if self.gzipped else open(path, "rb")  # noqa: SIM115
        self._name, self._max_bytes = path.name, max_bytes
        self._read, self._allowed = 0, lead
        self._turn = threading.Condition()
        self._stopped = False
        self._breaks = breaks

    def readable(self) -> bool:
        return True

    def took(self, n: int) -> None:
        """The parser has taken `n` more bytes: let the read-ahead go that much further."""
        if self._allowed is not None:
            with self._turn:
                self._allowed += n
                self._turn.notify_all()

    def stop(self) -> None:
        """End the read-ahead (reads return end of file), so that the reader can close."""
        with self._turn:
            self._stopped = True
            self._turn.notify_all()

    def readinto(self, buffer) -> int:
        if self._allowed is not None:
            with self._turn:
                if self._read >= self._allowed and not self._stopped:
                    self._turn.wait(self.WAIT_S)
        view, n = memoryview(buffer), 0
        while n < len(view) and not self._stopped:  # whole blocks: one per parsed batch
            try:
                got = self._file.readinto(view[n:])
            except (OSError, EOFError, zlib.error) as e:
                raise ReadError(f"{self._name} is not a valid gzip file: {e}") from None
            if not got:
                break
            n += got
        self._read += n
        if self._breaks is not None:
            self._breaks.feed(np.frombuffer(view[:n], np.uint8))
        if self.gzipped and self._max_bytes is not None and self._read > self._max_bytes:
            raise _TooLarge(
                f"{self._name} inflates to more than {self._max_bytes} bytes "
                "(MOLSTREAM_MAX_DECOMPRESSED_BYTES): refusing it as a possible gzip bomb")
        return n

    def close(self) -> None:
        self.stop()
        self._file.close()
        super().close()


def _inflate_all(path: Path, max_bytes: int | None) -> None:
    """Inflate a gzip file to its end, for nothing but the cap's check (and gzip's own)."""
    with _Source(path, max_bytes) as source:
        if source.gzipped and max_bytes is not None:
            buffer = bytearray(1 << 20)
            while source.readinto(buffer):
                pass


def read_header(path: Path, max_bytes: int | None = None) -> list[str]:
    with io.BufferedReader(_Source(path, max_bytes)) as f:
        first = f.readline(MAX_ROW_BYTES)
    if not first.strip():
        raise ReadError("the file is empty: no header row")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ReadError("the header row is not valid UTF-8") from None
    return [h.strip() for h in next(csv.reader(io.StringIO(text)))]


class _RowTooBig(Exception):
    pass


class _Unterminated(ReadError):
    pass


class LineMap:
    """Arrow numbers rows as CSV records (the header is record 1) and skips empty lines; a user
    opens the file in an editor, where a value holding a line break (or a quote closed only rows
    later) makes its record span several lines, and an empty line is a line. The map turns
    record numbers into those line numbers. It keeps only the records that hold a line break
    and the empty lines, so it stays empty for an ordinary file."""

    def __init__(self) -> None:
        self._parts: list[tuple[np.ndarray, np.ndarray]] = []  # (records, their line breaks)
        self._table: tuple[np.ndarray, np.ndarray] | None = None
        self._empty = np.zeros(0, np.int64)  # each empty line's place among the others
        self.warning: str | None = None

    def settle(self, breaks: _LineBreaks, records: int) -> None:
        """Place the empty lines, once the whole file has been read: its lines are its records,
        the line breaks their values hold, and the empty lines. When more lines look empty
        than that leaves (a quoted value holding an empty line), which are which is not known:
        line numbers then count none of them, and `warning` says so."""
        empty = np.concatenate(breaks.empty) if breaks.empty else np.zeros(0, np.int64)
        held = sum(int(b.sum()) for _, b in self._parts)
        if len(empty) and len(empty) == breaks.lines - records - held:
            self._empty = empty - np.arange(len(empty))
        elif len(empty) > breaks.lines - records - held > 0:
            self.warning = ("empty lines both between rows and inside quoted values: the line "
                            "numbers given leave the empty lines out")

    def add(self, records: np.ndarray, breaks: np.ndarray) -> None:
        held = breaks > 0
        if held.any():
            self._parts.append((records[held], breaks[held]))
            self._table = None

    def add_values(self, batch: pa.RecordBatch, records: np.ndarray) -> None:
        """The line breaks held in the batch's values (it must carry every column)."""
        breaks = np.zeros(batch.num_rows, dtype=np.int64)
        for column in batch.columns:
            if holds_byte(column, b"\n"):
                breaks += np.asarray(pc.count_substring(column, "\n"), dtype=np.int64)
        self.add(records, breaks)

    def lines(self, records: np.ndarray) -> np.ndarray:
        lines = records
        if self._parts:
            if self._table is None:
                held = np.concatenate([r for r, _ in self._parts])
                breaks = np.concatenate([b for _, b in self._parts])
                order = np.argsort(held, kind="stable")
                self._table = held[order], np.concatenate([[0], np.cumsum(breaks[order])])
            held, before = self._table
            lines = records + before[np.searchsorted(held, records, side="left")]
        if len(self._empty):
            lines = lines + np.searchsorted(self._empty, lines, side="right")
        return lines

    def line(self, record: int) -> int:
        return record if record < 0 else int(self.lines(np.array([record]))[0])


@dataclass
class Scan:
    """What a first pass over a file found, before anything is converted or published."""

    path: Path
    header: list[str]
    warnings: list[str]
    rows: int  # rows the parser accepted (a few may still turn out not to be UTF-8)
    rejections: list[Rejection]  # rows the parser refused (a wrong number of fields)
    block: int  # a block size the file's largest row fits in
    max_decompressed_bytes: int | None
    line_map: LineMap = field(default_factory=LineMap)

    @property
    def rows_total(self) -> int:
        return self.rows + len(self.rejections)


def scan(csv_path: Path, *, max_decompressed_bytes: int | None = None,
         on_block: Callable[[int], None] | None = None) -> Scan:
    """Pass 1: read the whole file (plain or gzip) once, converting nothing, to learn that it
    can be read as a whole (header, quoting, row sizes, the inflation cap) and how many rows it
    holds. Raises ReadError or ContractError for a file that cannot be; once this returns, the
    second pass (`Converter`) meets the same bytes and can publish as it goes."""
    try:
        return _scan_growing_blocks(csv_path, max_decompressed_bytes, on_block)
    except _TooLarge:
        raise
    except (ReadError, ContractError):
        # A gzip bomb is refused as one whatever else is wrong with what it holds (a header
        # without the required columns, a "row" of zeros longer than any block...), as when
        # the file was inflated whole before being read: inflate the rest, up to the cap.
        _inflate_all(csv_path, max_decompressed_bytes)
        raise


def _scan_growing_blocks(csv_path: Path, max_decompressed_bytes: int | None,
                         on_block: Callable[[int], None] | None) -> Scan:
    header = read_header(csv_path, max_decompressed_bytes)
    warnings = check_header(header)
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
                                       max_decompressed_bytes, skipped, breaks=breaks):
                    rows += batch.num_rows
                    if on_block:
                        on_block(rows)
            except _Unterminated as e:
                unterminated = e
            if breaks.lines == rows + len(skipped) + 1:  # a line per row: Arrow's numbers hold
                if unterminated:
                    raise unterminated
                return Scan(csv_path, header, warnings, rows, skipped, block,
                            max_decompressed_bytes)
            # Values holding line breaks or empty lines: Arrow's row numbers are not the
            # editor's line numbers. A pass with every column (any may hold a line break)
            # tells which rows span several lines.
            log.info("%s: values hold line breaks, or lines are empty: reading the file once "
                     "more to number its lines", csv_path.name)
            skipped, line_map = [], LineMap()
            for _ in _parse(csv_path, header, header, block,
                            max_decompressed_bytes, skipped, line_map=line_map):
                pass
        except _RowTooBig as e:
            if block >= MAX_ROW_BYTES:
                raise ReadError(f"{csv_path.name} is not valid CSV: a row is larger than "
                                f"{MAX_ROW_BYTES} bytes ({e})") from None
            block = min(4 * block, MAX_ROW_BYTES)
            log.info("%s: a row is larger than the CSV reader's block; reading it again with "
                     "%d-byte blocks", csv_path.name, block)
            continue
        skipped = [replace(r, line=line_map.line(r.line)) for r in skipped]
        if line_map.warning:
            warnings.append(line_map.warning)
        return Scan(csv_path, header, warnings, rows, skipped, block, max_decompressed_bytes,
                    line_map)


class Converter:
    """Pass 2 over a scanned file, as a stream: every EXPORT_BYTES of rows parsed are decoded as
    UTF-8 (rows that are not go to `rejections`), written to an HDF5 file, read back with vaex
    and handed out in chunks; each file is deleted once read. Memory and disk stay flat."""

    def __init__(self, scanned: Scan, hdf5_dir: Path) -> None:
        self.scanned, self.hdf5_dir = scanned, hdf5_dir
        self.rows = 0  # rows converted so far
        self.rejections: list[Rejection] = []  # rows found not to be UTF-8, not yet taken

    def take_rejections(self) -> list[Rejection]:
        taken, self.rejections = self.rejections, []
        return taken

    def chunks(self, size: int) -> Iterator[pa.Table]:
        """The rows in chunks of `size` (the last may be shorter), cut at fixed row positions."""
        def read_and_delete() -> Iterator[pa.Table]:
            for path in self.files():
                yield from _read_back(path, size)
                path.unlink()
        return _cut(read_and_delete(), size)

    def files(self) -> Iterator[Path]:
        """Convert the file, yielding each HDF5 file once written."""
        s = self.scanned
        present = [name for name in COLUMN_NAMES if name in s.header]
        self.hdf5_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.hdf5_dir.glob("block-*.hdf5"):
            stale.unlink()
        pending: list[pa.Table] = []
        written = 0
        for batch, records in _parse(s.path, s.header, present, s.block,
                                     s.max_decompressed_bytes, []):
            table, bad_utf8 = _to_strings(pa.Table.from_batches([batch]), present,
                                          s.line_map.lines(records))
            self.rejections.extend(bad_utf8)
            if table.num_rows:
                pending.append(table)
                self.rows += table.num_rows
            if sum(t.nbytes for t in pending) >= EXPORT_BYTES:
                yield self._export(pending, written)
                pending, written = [], written + 1
        if pending:
            yield self._export(pending, written)

    def _export(self, tables: list[pa.Table], number: int) -> Path:
        path = self.hdf5_dir / f"block-{number:06d}.hdf5"
        export_hdf5(pa.concat_tables(tables), path)
        return path


def convert(
    csv_path: Path, hdf5_dir: Path, *, max_decompressed_bytes: int | None = None,
    on_block: Callable[[int], None] | None = None,
) -> Converted:
    """Both passes at once: the whole file (plain or gzip) into HDF5 files under `hdf5_dir`."""
    scanned = scan(csv_path, max_decompressed_bytes=max_decompressed_bytes, on_block=on_block)
    converter = Converter(scanned, hdf5_dir)
    paths = list(converter.files())
    rejections = sorted(scanned.rejections + converter.rejections, key=lambda r: r.line)
    return Converted(paths, converter.rows, rejections, scanned.warnings)


def _parse(csv_path: Path, header: list[str], columns: list[str], block: int,
           max_decompressed_bytes: int | None, skipped: list[Rejection],
           line_map: LineMap | None = None, breaks: _LineBreaks | None = None
           ) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]:
    """Arrow's streaming parse of `columns` (as bytes), batch by batch with each row's record
    number; the rows it refuses go to `skipped` (numbered as records too). Counts the file's
    lines into `breaks`; given a `line_map` (and every column), fills it with the line breaks
    and empty lines of the file. Raises ReadError (or _RowTooBig) for a file it cannot read,
    _Unterminated (once it is read) for a quote never closed."""
    unterminated: list[int] = []
    if line_map is not None and breaks is None:
        breaks = _LineBreaks(find_empty=True)

    def invalid_row(row: pacsv.InvalidRow) -> str:
        if line_map is not None and row.number and row.number > 0:
            line_map.add(np.array([row.number]), np.array([(row.text or "").count("\n")]))
        if _ends_inside_quotes(row.text or ""):
            # Arrow read to the end of the file looking for the closing quote: this "row" holds
            # every line after the quote, which must not pass for one rejected row.
            unterminated.append(row.number or -1)
        skipped.append(Rejection(row.number or -1, f"expected {row.expected_columns} fields, "
                                 f"found {row.actual_columns}", {"text": (row.text or "")[:200]}))
        return "skip"

    source = _Source(csv_path, max_decompressed_bytes, lead=READ_AHEAD_BLOCKS * block,
                     breaks=breaks)
    try:
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(use_threads=False, block_size=block,
                                           column_names=header, skip_rows=1),
            parse_options=pacsv.ParseOptions(newlines_in_values=True,
                                             invalid_row_handler=invalid_row),
            convert_options=pacsv.ConvertOptions(
                include_columns=columns, column_types={n: pa.binary() for n in columns},
                strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid as e:
        source.close()
        _raise_invalid(csv_path, e)
    except BaseException:
        source.close()
        raise
    next_record = 2
    try:
        for batch in _batches(reader, csv_path):
            n_skipped = sum(1 for r in skipped if r.line >= next_record)
            records = np.arange(next_record, next_record + batch.num_rows + n_skipped)
            if n_skipped:
                records = records[~np.isin(records, [r.line for r in skipped[-n_skipped:]])]
            next_record += batch.num_rows + n_skipped
            if line_map is not None:
                line_map.add_values(batch, records)
            yield batch, records
            source.took(block)
        if line_map is not None:
            line_map.settle(breaks, max([next_record - 1, *(r.line for r in skipped[-1:])]))
    finally:
        source.stop()
        reader.close()
        source.close()
    if unterminated:
        opened = line_map.line(unterminated[0]) if line_map is not None else unterminated[0]
        raise _Unterminated(f"{csv_path.name} is not valid CSV: the quoted field opened on "
                            f"line {opened} is never closed (unterminated quote)")


def export_hdf5(table: pa.Table, path: Path) -> None:
    """Write `table` (no nulls) as an HDF5 file that `vaex.open` reads, in vaex's own layout and
    with vaex's own column writers, skipping the DataFrame evaluation of `export_hdf5` (what
    `Writer.layout` computes through it is read here from the Arrow arrays directly)."""
    n = table.num_rows
    with Writer(str(path)) as writer:
        writer.column_writers = {}
        for name in table.column_names:
            column = table.column(name)
            if column.null_count:
                raise ValueError(f"column {name} has nulls")  # never: the reader fills ""
            dtype = DataType(column.type)
            if dtype.is_string:
                size = pc.sum(pc.binary_length(column)).as_py() or 0
                writer.column_writers[name] = ColumnWriterString(
                    writer.columns, name, dtype, (n,), size, False)
            else:
                writer.column_writers[name] = ColumnWriterPrimitive(
                    writer.columns, name, dtype, (n,), False, False)
        writer.columns.attrs["column_order"] = ",".join(table.column_names)
        writer.h5.flush()
        writer._layout_called = True
        # As Writer.write does: the file has its final size, map it and copy the columns in.
        writer.file = open(writer.path, "rb+")  # noqa: SIM115 - Writer.close closes it
        writer.mmap = mmap.mmap(writer.file.fileno(), 0)
        for name in table.column_names:
            writer.column_writers[name].mmap(writer.mmap, writer.file)
            for chunk in table.column(name).chunks:
                writer.column_writers[name].write(chunk)
            if writer.column_writers[name].to_offset != n:
                raise AssertionError(f"column {name}: wrote {writer.column_writers[name].to_offset}"
                                     f" of {n} rows")


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
            _raise_invalid(path, e)


def _raise_invalid(path: Path, e: pa.ArrowInvalid) -> NoReturn:
    if "straddl" in str(e):  # a row longer than the block: worth another try, larger
        raise _RowTooBig(str(e)) from None
    raise ReadError(f"{path.name} is not valid CSV: {e}") from None


def _to_strings(table: pa.Table, present: list[str], lines: np.ndarray
                ) -> tuple[pa.Table, list[Rejection]]:
    """Decode UTF-8 (rejecting rows that are not); the columns of the file only."""
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
    # Absent optional columns stay absent: the worker leaves them alone in existing rows.
    out = pa.table({LINE: pa.array(lines, pa.int64()),
                    **{n: columns[n] for n in COLUMN_NAMES if n in columns}})
    return (out.filter(pa.array(~bad)) if bad.any() else out), rejections


def remove(paths: list[Path]) -> None:
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
