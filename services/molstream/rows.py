"""A batch's Arrow columns as what the database statements take: keys in order, dimension ids,
and rows as tuples of Python values (what the driver's executemany binds).

Arrow ⇄ NumPy by hand: pyarrow's own to_numpy(), pa.array() and take(ndarray) import pandas
(~45 MB of the worker's memory), which the worker otherwise never needs.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def int64s(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An int64 column without nulls as a NumPy array."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return np.frombuffer(array.buffers()[1], dtype=np.int64, count=len(array),
                         offset=array.offset * 8)

def arrow(values: np.ndarray) -> pa.Array:
    values = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])

def dimension_ids(column: pa.ChunkedArray, mapping: dict) -> pa.ChunkedArray:
    """The id of each value of `column` (null stays null)."""
    values = column.unique().drop_null()
    ids = arrow(np.array([mapping[v] for v in values.to_pylist()], dtype=np.int64))
    return pc.take(ids, pc.index_in(column, value_set=values))

def last_per_key(column: pa.ChunkedArray) -> pa.Array:
    """Row positions of the last occurrence of each key, in key order."""
    keys = int64s(column)
    _, first_from_end = np.unique(keys[::-1], return_index=True)
    return arrow(len(keys) - 1 - first_from_end)

def key_order(column: pa.ChunkedArray) -> pa.Array | None:
    """Row positions in key order; None when the rows already are (the usual case)."""
    keys = int64s(column)
    if len(keys) < 2 or bool(np.all(keys[1:] >= keys[:-1])):
        return None
    return arrow(np.argsort(keys, kind="stable"))

def tuples(*columns: pa.Array | pa.ChunkedArray, ends: tuple = ()) -> list[tuple]:
    """Rows as tuples of Python values (what the driver's executemany binds), each ending with
    the values `ends` (the same for every row)."""
    values = [pylist(c) for c in columns]
    values += [[v] * len(values[0]) for v in ends]
    return list(zip(*values, strict=True))

def pylist(column: pa.Array | pa.ChunkedArray) -> list:
    if column.null_count == 0 and column.type == pa.int64():
        return int64s(column).tolist()  # several times faster than to_pylist
    return column.to_pylist()

def not_written(rows: list[tuple], written: dict[int, tuple]) -> list[tuple]:
    fresh = [r for r in rows if written.get(r[0]) != r]
    written.update((r[0], r) for r in fresh)
    return fresh

def table_values(sources: tuple[tuple[str, str], ...], rows: pa.Table, ids: dict[str, pa.Array],
             take: pa.Array | None) -> tuple[tuple[str, ...], list]:
    """The columns of `sources` the batch has values for, and those values (rows `take`)."""
    columns, values = [], []
    for column, source in sources:
        array = ids.get(source)
        if array is None and source in rows.column_names:
            array = rows.column(source)
        if array is not None:
            columns.append(column)
            values.append(array if take is None else array.take(take))
    return tuple(columns), values
