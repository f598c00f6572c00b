"""Arrow's streaming CSV parse of a file, batch by batch with each row's record number, and the
decoding of the parsed bytes as UTF-8."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ..contract import COLUMN_NAMES, LINE, Rejection
from .dialect import Format
from .errors import ReadError
from .lines import LineMap, _LineBreaks
from .source import _Source

READ_AHEAD_BLOCKS = 4


class _RowTooBig(Exception):
    pass


class _Unterminated(ReadError):
    pass


def _parse(csv_path: Path, header: list[str], columns: list[str], block: int,
           max_decompressed_bytes: int | None, skipped: list[Rejection], fmt: Format,
           line_map: LineMap | None = None, breaks: _LineBreaks | None = None
           ) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]:
    """Arrow's streaming parse of `columns` (as bytes), batch by batch with each row's record
    number; the rows it refuses go to `skipped` (numbered as records too). `fmt` has its
    delimiter found; a null token reads as an empty field, which the contract then treats as
    any empty field (NULL, or a rejected row in a required column). Counts the file's lines
    into `breaks`; given a `line_map` (and every column), fills it with the line breaks and
    empty lines of the file. Raises ReadError (or _RowTooBig) for a file it cannot read,
    _Unterminated (once it is read) for a quote never closed."""
    delimiter, tokens = fmt.delimiter or ",", list(fmt.null_tokens)
    unterminated: list[int] = []
    if line_map is not None and breaks is None:
        breaks = _LineBreaks(find_empty=True)

    def invalid_row(row: pacsv.InvalidRow) -> str:
        if line_map is not None and row.number and row.number > 0:
            line_map.add(np.array([row.number]), np.array([(row.text or "").count("\n")]))
        if _ends_inside_quotes(row.text or "", delimiter):
            # Arrow read to the end of the file looking for the closing quote: this "row" holds
            # every line after the quote, which must not pass for one rejected row.
            unterminated.append(row.number or -1)
        skipped.append(Rejection(row.number or -1, f"expected {row.expected_columns} fields, "
                                 f"found {row.actual_columns}", {"text": (row.text or "")[:200]}))
        return "skip"

    source = _Source(csv_path, max_decompressed_bytes, lead=READ_AHEAD_BLOCKS * block,
                     breaks=breaks, member=fmt.member)
    try:
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(use_threads=False, block_size=block,
                                           column_names=header, skip_rows=1),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True,
                                             invalid_row_handler=invalid_row),
            # Null tokens are matched quoted or not: all-quoted exports quote them too.
            convert_options=pacsv.ConvertOptions(
                include_columns=columns, column_types={n: pa.binary() for n in columns},
                null_values=tokens, strings_can_be_null=bool(tokens),
                quoted_strings_can_be_null=bool(tokens)),
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
            # A batch's rows are the next record numbers that Arrow did not skip. It may have
            # skipped rows of later blocks already (it parses ahead): those are passed over
            # here, and again when their turn comes.
            ahead = [r.line for r in skipped if r.line >= next_record]
            records = np.arange(next_record, next_record + batch.num_rows + len(ahead))
            if ahead:
                records = records[~np.isin(records, ahead)][:batch.num_rows]
            if batch.num_rows:
                next_record = int(records[-1]) + 1
            if tokens:
                batch = _nulls_emptied(batch)
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


def _nulls_emptied(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with its null tokens (nulls, as Arrow read them) as empty fields."""
    if not any(c.null_count for c in batch.columns):
        return batch
    return pa.RecordBatch.from_arrays(
        [pc.fill_null(c, b"") if c.null_count else c for c in batch.columns],
        schema=batch.schema)


@functools.cache
def _quoting(delimiter: str) -> re.Pattern:
    return re.compile(f'["{re.escape(delimiter)}\r\n]')


def _ends_inside_quotes(text: str, delimiter: str = ",") -> bool:
    """Whether a row's text ends inside a quoted field (RFC 4180: a quote opens one only at the
    start of a field, and `""` inside one is a literal quote)."""
    inside, field_start, skip_to = False, 0, 0
    for m in _quoting(delimiter).finditer(text):
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
