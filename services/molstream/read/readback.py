"""Reading the HDF5 files back with vaex, one memory-mapped file at a time, in chunks cut at fixed
row positions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import vaex

from ..contract import COLUMN_NAMES, LINE


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
