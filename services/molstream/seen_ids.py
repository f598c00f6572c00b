"""The fetcher's set of activity ids already seen in a file (molstream.fetcher.DuplicateFilter).

Membership is a compressed bitmap of ids (pyroaring: a 32-bit BitMap, built straight from the
NumPy buffer, for ids below 2^32 as ChEMBL's are, and a BitMap64 for the rest, the contract's ids
going up to 18 digits). ChEMBL's ids are dense, so the bitmap costs about a bit per id of their
range (~3 MB for ChEMBL's 24M activities, in any row order) instead of 12 bytes a row.

The line of an id's first occurrence is needed only when the id comes again, so it is kept on
disk, not in memory: each chunk's kept ids (sorted, as gaps) and their lines (as steps) go to a
file as one zstd-compressed record, and memory keeps per record its place in the file and its
id range (a few dozen bytes a chunk). A duplicate's first line is found by decoding, in file
order, the records whose range holds it; all the repeats of a chunk are looked up in one
pass. A file with repeats scattered over many records (say, the same rows twice, shuffled)
would decode the whole file at every chunk: once the decoding done since the last compaction
exceeds what the records hold, they are merged by id into one sorted run on disk (in bounded
slices), where an id is found by reading the page of the run that holds it (memory keeps the
first id of every page of 512: 16 KB a million rows; the run is read, not mapped, so its pages
never count in the process's memory).

Disk (bench/seen_ids.py, 24M ids): 0.24 bytes a row in id order, 2.9 grouped by target, 3.7
shuffled; a sorted run, 16 bytes a row, only for a file that keeps repeating ids from all over
itself.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyroaring import BitMap, BitMap64

_CODEC = pa.Codec("zstd", compression_level=1)
_LOW = 1 << 32  # ids below go to the 32-bit bitmap


def _narrowest(values: np.ndarray, kinds: tuple[type, ...]) -> np.ndarray:
    """`values` in the first of `kinds` that holds them all."""
    if not len(values):
        return values.astype(kinds[0])
    lo, hi = int(values.min()), int(values.max())
    for kind in kinds:
        info = np.iinfo(kind)
        if info.min <= lo and hi <= info.max:
            return values.astype(kind)
    raise OverflowError(f"{lo}..{hi}")


@dataclass(frozen=True)
class _Record:
    offset: int  # in the tail file
    size: int  # compressed bytes
    rows: int
    smallest: int
    largest: int
    first_line: int  # the smallest line
    gaps: str  # NumPy type of the id gaps (less one)
    steps: str  # NumPy type of the line steps


class SeenIds:
    """Ids seen so far and, on disk, the line each was first seen on."""

    # Entries a compaction sorts at once (16 bytes each, sorted with a copy or two).
    SLICE_ROWS = 1 << 17
    # A chunk whose ids are all above every id seen skips the bitmap's look-up.
    FAST_PATH = True
    PAGE = 512  # ids of the sorted run a look-up reads at least (4 KB)
    SPAN = 256  # pages it reads at most at once

    def __init__(self, directory: Path | None = None) -> None:
        self.low, self.high = BitMap(), BitMap64()  # ids below 2^32, the others
        self.largest = -1
        self._directory = directory
        self._dir: Path | None = None  # made on the first record
        self._tail = None  # file of compressed records
        self._end = 0
        self._records: list[_Record] = []
        self._tail_rows = 0
        self._base_rows = 0  # entries in the sorted run (files base.ids, base.lines)
        self._base: dict[str, object] = {}  # its files, open
        self._index = np.empty(0, dtype=np.int64)  # its first id of every PAGE
        self._decoded = 0  # entries decoded by look-ups since the last compaction

    # -- membership -----------------------------------------------------------------------

    def earlier(self, unique: np.ndarray) -> np.ndarray:
        """Which of `unique` (sorted, distinct) were seen before, as a sorted array."""
        if self.largest < 0 or (self.FAST_PATH and unique[0] > self.largest):
            return unique[:0]
        low, high = self._bitmaps(unique)
        found = [np.asarray((low & self.low).to_array(), dtype=np.int64)]
        if high is not None:
            found.append(np.fromiter(high & self.high, np.int64))
        return np.concatenate(found) if len(found) > 1 else found[0]

    def add(self, ids: np.ndarray, lines: np.ndarray) -> None:
        """Ids not seen before (distinct, any order) and the lines they were seen on."""
        if not len(ids):
            return
        order = np.argsort(ids, kind="stable")
        ids, lines = ids[order], lines[order]
        low, high = self._bitmaps(ids)
        self.low |= low
        if high is not None:
            self.high |= high
        self.largest = max(self.largest, int(ids[-1]))
        self._append(ids, lines)

    @staticmethod
    def _bitmaps(ids: np.ndarray) -> tuple[BitMap, BitMap64 | None]:
        """Sorted, distinct `ids` as a 32-bit bitmap of those below 2^32 and a 64-bit one of
        the others (None when there are none)."""
        if ids[0] < 0:
            raise ValueError(f"activity_id {ids[0]}: ids are never negative (the contract's)")
        split = int(np.searchsorted(ids, _LOW)) if ids[-1] >= _LOW else len(ids)
        low = BitMap(memoryview(ids[:split].astype(np.uint32)))
        return low, (BitMap64(ids[split:].tolist()) if split < len(ids) else None)

    def _nth(self, k: int) -> int:
        """The k-th smallest id seen (from 0)."""
        return int(self.low[k]) if k < len(self.low) else int(self.high[k - len(self.low)])

    # -- first lines ----------------------------------------------------------------------

    def first_lines(self, ids: np.ndarray) -> np.ndarray:
        """The line each of `ids` (sorted, distinct, all seen) was first seen on."""
        found = np.full(len(ids), -1, dtype=np.int64)
        if not len(ids):
            return found
        if self._base_rows:
            self._search_base(ids, found)
        for record in self._records:
            missing = found < 0
            if not missing.any():
                break
            wanted = ids[missing]
            lo, hi = np.searchsorted(wanted, [record.smallest, record.largest + 1])
            if lo == hi:
                continue  # none of the wanted ids is in this record's range
            rec_ids, rec_lines = self._decode(record)
            self._decoded += record.rows
            pos = np.minimum(np.searchsorted(rec_ids, wanted[lo:hi]), record.rows - 1)
            hit = rec_ids[pos] == wanted[lo:hi]
            where = np.flatnonzero(missing)[lo:hi]
            found[where[hit]] = rec_lines[pos[hit]]
        if (found < 0).any():
            raise AssertionError("an id in the seen set has no line on disk")
        if self._decoded > self._base_rows + self._tail_rows and self._tail_rows:
            self._compact()
        return found

    def _search_base(self, values: np.ndarray, lines: np.ndarray | None = None) -> np.ndarray:
        """Where each of `values` (sorted) goes in the sorted run (NumPy's searchsorted, left);
        `lines`, when given, gets the line of each value the run holds. Reads only the pages
        that may hold them, a span of adjacent ones at a time."""
        pos = np.zeros(len(values), dtype=np.int64)
        pages = np.searchsorted(self._index, values, side="right") - 1  # -1: before the run
        start = int(np.searchsorted(pages, 0))
        if start == len(values):
            return pos
        wanted, first, count = np.unique(pages[start:], return_index=True, return_counts=True)
        i = 0
        while i < len(wanted):  # a span: pages wanted, and what lies between them if little
            j = i + 1
            while (j < len(wanted) and wanted[j] - wanted[j - 1] <= 8
                   and wanted[j] - wanted[i] < self.SPAN):
                j += 1
            a, b = int(wanted[i]) * self.PAGE, min((int(wanted[j - 1]) + 1) * self.PAGE,
                                                    self._base_rows)
            sel = slice(start + int(first[i]), start + int(first[j - 1] + count[j - 1]))
            ids = self._read_base("ids", a, b)
            at = np.searchsorted(ids, values[sel])
            pos[sel] = a + at
            if lines is not None:
                hit = ids[np.minimum(at, b - a - 1)] == values[sel]
                if hit.any():
                    lines[sel][hit] = self._read_base("lines", a, b)[at[hit]]
            i = j
        return pos

    def _read_base(self, name: str, start: int, stop: int) -> np.ndarray:
        f = self._base[name]
        return np.frombuffer(os.pread(f.fileno(), (stop - start) * 8, start * 8), np.int64)

    def close(self) -> None:
        for f in self._base.values():
            f.close()
        self._base = {}
        if self._tail is not None:
            self._tail.close()
            self._tail = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 - at interpreter exit, modules may be gone
            pass

    # -- the files ------------------------------------------------------------------------

    def _append(self, ids: np.ndarray, lines: np.ndarray) -> None:
        if self._tail is None:
            if self._directory is not None:
                self._directory.mkdir(parents=True, exist_ok=True)
            self._dir = Path(tempfile.mkdtemp(prefix="seen-ids-", dir=self._directory))
            self._tail = open(self._dir / "tail", "w+b")  # noqa: SIM115 - closed by close()
        # In a file in id order both are mostly ones and zeros, and compress to little.
        gaps = _narrowest(np.diff(ids) - 1, (np.uint16, np.uint32, np.uint64))
        first = int(lines.min())
        steps = _narrowest(np.diff(lines, prepend=first), (np.int16, np.int32, np.int64))
        raw = gaps.tobytes() + steps.tobytes()
        blob = _CODEC.compress(raw, asbytes=True)
        self._tail.seek(self._end)
        self._tail.write(blob)
        self._records.append(_Record(self._end, len(blob), len(ids), int(ids[0]), int(ids[-1]),
                                     first, gaps.dtype.str, steps.dtype.str))
        self._end += len(blob)
        self._tail_rows += len(ids)

    def _decode(self, r: _Record) -> tuple[np.ndarray, np.ndarray]:
        self._tail.seek(r.offset)
        gaps, steps = np.dtype(r.gaps), np.dtype(r.steps)
        split = (r.rows - 1) * gaps.itemsize
        raw = _CODEC.decompress(self._tail.read(r.size), asbytes=True,
                                decompressed_size=split + r.rows * steps.itemsize)
        ids = np.empty(r.rows, dtype=np.int64)
        ids[0] = r.smallest
        ids[1:] = np.frombuffer(raw[:split], gaps)  # gaps less one, then the ids
        ids[1:] += 1
        np.cumsum(ids, out=ids)
        lines = np.cumsum(np.frombuffer(raw[split:], steps), dtype=np.int64)
        return ids, lines + r.first_line

    def _compact(self) -> None:
        """The sorted run and every record, merged by id into a new sorted run, slice by slice
        (slices cut at the bitmap's every SLICE_ROWS-th id), each record decoded once."""
        total = self._base_rows + self._tail_rows
        bounds = [self._nth(k) for k in range(self.SLICE_ROWS, total, self.SLICE_ROWS)]
        spills = [open(self._dir / f"spill-{i}", "w+b")  # noqa: SIM115 - closed below
                  for i in range(len(bounds) + 1)]
        try:
            for record in self._records:
                ids, lines = self._decode(record)
                cuts = np.searchsorted(ids, bounds)
                for i, (a, b) in enumerate(zip([0, *cuts], [*cuts, len(ids)], strict=True)):
                    if a < b:
                        spills[i].write(np.stack([ids[a:b], lines[a:b]], axis=1).tobytes())
            if self._base_rows:
                cuts = [0, *self._search_base(np.array(bounds, dtype=np.int64)).tolist(),
                        self._base_rows]
            index, written = [], 0
            with open(self._dir / "new.ids", "wb") as out_ids, \
                    open(self._dir / "new.lines", "wb") as out_lines:
                for i, spill in enumerate(spills):
                    spill.seek(0)
                    pairs = np.frombuffer(spill.read(), np.int64).reshape(-1, 2)
                    ids, lines = pairs[:, 0], pairs[:, 1]
                    if self._base_rows:
                        ids = np.concatenate([self._read_base("ids", cuts[i], cuts[i + 1]), ids])
                        lines = np.concatenate([self._read_base("lines", cuts[i], cuts[i + 1]),
                                                lines])
                    order = np.argsort(ids, kind="stable")
                    ids = ids[order]
                    index.append(ids[-written % self.PAGE::self.PAGE])
                    written += len(ids)
                    out_ids.write(ids.tobytes())
                    out_lines.write(lines[order].tobytes())
        finally:
            for i, spill in enumerate(spills):
                spill.close()
                (self._dir / f"spill-{i}").unlink(missing_ok=True)
        for f in self._base.values():
            f.close()
        (self._dir / "new.ids").replace(self._dir / "base.ids")
        (self._dir / "new.lines").replace(self._dir / "base.lines")
        self._base = {name: open(self._dir / f"base.{name}", "rb")  # noqa: SIM115 - close()
                      for name in ("ids", "lines")}
        self._base_rows, self._index = total, np.concatenate(index)
        self._tail.seek(0)
        self._tail.truncate()
        self._end, self._records, self._tail_rows, self._decoded = 0, [], 0, 0
