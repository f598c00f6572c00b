"""Pass 2, the conversion: the rows parsed (as UTF-8 strings, with their line numbers) written to
HDF5 files in vaex's layout, every EXPORT_BYTES of rows (`Converter`, `convert`)."""

from __future__ import annotations

import mmap
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from vaex.datatype import DataType
from vaex.hdf5.writer import ColumnWriterPrimitive, ColumnWriterString, Writer

from ..contract import COLUMN_NAMES, Rejection
from .dialect import DETECT, Format
from .parse import _parse, _to_strings
from .readback import _cut, _read_back
from .scanning import Scan, scan

EXPORT_BYTES = 16 * 1024 * 1024


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
                                     s.max_decompressed_bytes, [], s.fmt):
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
    on_block: Callable[[int], None] | None = None, fmt: Format = DETECT,
) -> Converted:
    """Both passes at once: the whole file (plain or compressed) into HDF5 files under
    `hdf5_dir`."""
    scanned = scan(csv_path, max_decompressed_bytes=max_decompressed_bytes, on_block=on_block,
                   fmt=fmt)
    converter = Converter(scanned, hdf5_dir)
    paths = list(converter.files())
    rejections = sorted(scanned.rejections + converter.rejections, key=lambda r: r.line)
    return Converted(paths, converter.rows, rejections, scanned.warnings)


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


def remove(paths: list[Path]) -> None:
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
