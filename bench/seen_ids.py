"""The fetcher's seen-id set, old against new, side by side in one run (issue 20, point 2).

    python -m bench.seen_ids [--rows 1000000,4000000,24000000] [--orders ascending,shuffled,chembl]
                             [--impls old,new] [--twice]

Feeds each implementation N distinct activity ids in chunks of the fetcher's batch size
(Settings.batch_size), as `DuplicateFilter.filter` gets them (a table of `_line` and
`activity_id`), in three orders:

- ascending: ids in order (ChEMBL's FTP export, `molstream sample`);
- shuffled: the same ids in random order;
- chembl: ids grouped by target as web-service dumps come (a target's ids ascending, targets one
  after another: ascending runs with jumps; target sizes skewed, ~1,600 rows a target).

The ids are N drawn from 1.2 N (ChEMBL's ids cover ~29M for ~24M activities). `--twice`: also a
file of every id twice, shuffled (N/2 distinct ids): the worst case for finding first lines.

Each measurement runs in a process of its own: the ids are made first, then the kernel's RSS
high-water mark is reset (/proc/self/clear_refs) and the figure is VmHWM − VmRSS at that point
(what the set and its work add), with the seconds spent in `filter`. "disk" is what the new set
keeps in its directory at the end.

`old` is the implementation this replaced (sorted NumPy runs of ids and their lines, 12 bytes a
row), kept here verbatim so the comparison stays runnable. `new-nofast` is the new one without
its fast path (a chunk whose ids are all above every id seen skips the bitmap's look-up).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from molstream.config import Settings
from molstream.contract import LINE, Rejection


class OldDuplicateFilter:
    """molstream.fetcher.DuplicateFilter before issue 20 (commit 2bac977), verbatim."""

    MAX_RUNS = 64

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted ids, their lines)
        self._largest: int | None = None

    def filter(self, rows: pa.Table) -> tuple[pa.Table, list[Rejection]]:
        ids = rows.column("activity_id").to_numpy()
        lines = rows.column(LINE).to_numpy()
        if not len(ids):
            return rows, []
        earlier = self._earlier_lines(ids)  # line of an earlier chunk's occurrence, or -1
        unique, first = np.unique(ids, return_index=True)  # each id's first position here
        repeated = np.ones(len(ids), dtype=bool)
        repeated[first] = False
        dup = (earlier >= 0) | repeated
        rejections = []
        for i in np.flatnonzero(dup):
            first_line = (earlier[i] if earlier[i] >= 0
                          else lines[first[np.searchsorted(unique, ids[i])]])
            rejections.append(Rejection(
                int(lines[i]), f"duplicate activity_id {ids[i]} (first seen on line {first_line})",
                {"activity_id": str(ids[i])}))
        keep = ~dup
        if keep.any():
            kept = ids[keep]
            order = np.argsort(kept, kind="stable")
            self._runs.append((kept[order], lines[keep][order].astype(np.int32)))
            self._largest = int(kept[order[-1]]) if self._largest is None else max(
                self._largest, int(kept[order[-1]]))
        return (rows.filter(pa.array(keep)) if dup.any() else rows), rejections

    def _earlier_lines(self, ids: np.ndarray) -> np.ndarray:
        found = np.full(len(ids), -1, dtype=np.int64)
        if self._largest is None or ids.min() > self._largest:
            return found  # the usual case: ids go up through the file
        if len(self._runs) > self.MAX_RUNS:
            merged = np.concatenate([r[0] for r in self._runs])
            order = np.argsort(merged, kind="stable")
            self._runs = [(merged[order], np.concatenate([r[1] for r in self._runs])[order])]
        for run_ids, run_lines in self._runs:
            pos = np.minimum(np.searchsorted(run_ids, ids), len(run_ids) - 1)
            hit = (run_ids[pos] == ids) & (found < 0)
            found[hit] = run_lines[pos[hit]]
        return found


def make_ids(rows: int, order: str, seed: int = 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if order == "twice":
        ids = np.repeat(make_ids(rows // 2, "ascending", seed), 2)
        return ids[rng.permutation(len(ids))]
    ids = np.sort(rng.choice(int(rows * 1.2), size=rows, replace=False)) + 1
    if order == "ascending":
        return ids
    if order == "shuffled":
        return ids[rng.permutation(rows)]
    if order == "chembl":
        targets = max(10, rows // 1600)
        weights = 1.0 / np.arange(1, targets + 1) ** 0.8
        target = rng.choice(targets, size=rows, p=weights / weights.sum())
        rank = rng.permutation(targets)[target]  # the order targets come in
        return ids[np.argsort(rank, kind="stable")]
    raise ValueError(order)


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def measure(impl: str, rows: int, order: str) -> dict:
    """One measurement, in this process."""
    ids = make_ids(rows, order)
    chunk = Settings().batch_size
    from molstream.fetcher import DuplicateFilter
    from molstream.seen_ids import SeenIds

    SeenIds.FAST_PATH = impl != "new-nofast"
    with tempfile.TemporaryDirectory(prefix="bench-seen-") as tmp:
        def made():
            return OldDuplicateFilter() if impl == "old" else DuplicateFilter(Path(tmp))
        warm = made()  # libraries loaded and kernels made before the mark: both alike
        for first in (2, 5):
            warm.filter(pa.table({LINE: pa.array(np.arange(first, first + 3)),
                                  "activity_id": pa.array(np.array([7, 7, 8]))}))
        if impl != "old":
            warm.close()
        f = made()
        with open("/proc/self/clear_refs", "w") as c:
            c.write("5")  # the high-water mark back to the current RSS
        base = _status("VmRSS")
        rejected = kept = 0
        disk = 0
        t = shown = time.perf_counter()
        for start in range(0, rows, chunk):
            if time.perf_counter() - shown > 5:  # for a run cut short by --timeout
                shown = time.perf_counter()
                print(json.dumps({"rows_done": start, "seconds": round(shown - t, 1),
                                  "peak_rss_delta_mb": round((_status("VmHWM") - base) / 1e6, 1)}),
                      flush=True)
            part = ids[start:start + chunk]
            table = pa.table({LINE: pa.array(np.arange(start + 2, start + 2 + len(part))),
                              "activity_id": pa.array(part)})
            valid, dups = f.filter(table)
            kept += valid.num_rows
            rejected += len(dups)
        seconds = time.perf_counter() - t
        peak = _status("VmHWM")
        if impl != "old":
            disk = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
            f.close()
    return {"impl": impl, "rows": rows, "order": order, "seconds": round(seconds, 2),
            "peak_rss_delta_mb": round((peak - base) / 1e6, 1), "disk_mb": round(disk / 1e6, 1),
            "kept": kept, "rejected": rejected}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="1000000,4000000,24000000")
    p.add_argument("--orders", default="ascending,shuffled,chembl")
    p.add_argument("--impls", default="old,new")
    p.add_argument("--twice", action="store_true", help="also every id twice, shuffled")
    p.add_argument("--timeout", type=float, default=170,
                   help="seconds a measurement may take (then: how far it got)")
    p.add_argument("--one", help=argparse.SUPPRESS)  # impl:rows:order, in this process
    a = p.parse_args(argv)
    if a.one:
        impl, rows, order = a.one.split(":")
        print(json.dumps(measure(impl, int(rows), order)))
        return 0
    orders = a.orders.split(",") + (["twice"] if a.twice else [])
    print(f"{'rows':>11} {'order':<10} " + " ".join(
        f"{impl + ' s':>12} {impl + ' MB':>10}" for impl in a.impls.split(",")) + "   new disk MB")
    results = []
    for rows in (int(r) for r in a.rows.split(",")):
        for order in orders:
            line = f"{rows:>11,} {order:<10} "
            disk = ""
            for impl in a.impls.split(","):
                child = subprocess.Popen([sys.executable, "-m", "bench.seen_ids", "--one",
                                          f"{impl}:{rows}:{order}"], stdout=subprocess.PIPE,
                                         text=True, env=os.environ)
                try:
                    out = child.communicate(timeout=a.timeout)[0]
                except subprocess.TimeoutExpired:
                    child.kill()
                    out = child.communicate()[0]
                r = json.loads(out.splitlines()[-1]) if out.strip() else {}
                r.update(impl=impl, rows=rows, order=order)
                results.append(r)
                if "rows_done" in r:  # cut short: how far it got, and its peak so far
                    cut = f">{a.timeout:.0f} s"
                    line += f"{cut:>12} {r['peak_rss_delta_mb']:>9.1f}+"
                    r["note"] = f"stopped at {a.timeout:.0f} s after {r['rows_done']:,} rows"
                else:
                    line += f"{r['seconds']:>12.2f} {r['peak_rss_delta_mb']:>10.1f}"
                if impl != "old" and "disk_mb" in r:
                    disk = f"{r['disk_mb']:>8.1f}"
            print(line + "   " + disk, flush=True)
    for r in results:
        if "note" in r:
            print(f"{r['impl']} {r['order']} {r['rows']:,}: {r['note']}")
    out = Path(__file__).parent / "results" / "seen_ids.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
