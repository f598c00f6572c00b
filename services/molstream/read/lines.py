"""Line numbering: the line breaks of a byte stream as it is read (`_LineBreaks`), and the map
from Arrow's record numbers to the line numbers an editor shows (`LineMap`)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..contract import holds_byte


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
