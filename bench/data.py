"""The benchmark's input: deterministic generated files (cached), and rows read back from them.

Files come from `molstream.sample.generate` (shape "chembl" by default: ChEMBL's column order
and proportions; "legacy": molstream's first generator) and are kept under `.cache/bench/data`,
keyed by row count, seed and shape, so a second run skips generation. Reading here uses plain
Arrow with no validation: the baseline and the limit are given the rows, not the pipeline's
checks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
from molstream.contract import COLUMNS, FLOAT, INT
from molstream_dev._process import CACHE

DATA = CACHE / "bench" / "data"
# The row orders the bench compares (issue 20): as generated (activity_id ascending), one
# target at a time (as ChEMBL's web-service dumps come), and shuffled (seeded).
ORDERS = ("id", "target", "shuffled")
_TYPES = {INT: pa.int64(), FLOAT: pa.float64()}


def sample(rows: int, seed: int = 0, shape: str = "chembl") -> Path:
    """The generated `.csv.gz` of `rows` rows of `shape` (generated in a child process on first
    use, so the harness's own memory stays small)."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"activities-{rows}-{seed}-{shape}.csv.gz"
    if not path.exists():
        tmp = path.with_name(f"tmp-{os.getpid()}-{path.name}")
        subprocess.run([sys.executable, "-m", "molstream", "sample", "--rows", str(rows),
                        "--seed", str(seed), "--shape", shape, "--out", str(tmp)], check=True,
                       stdout=subprocess.DEVNULL)
        tmp.replace(path)
    return path


def ordered(csv_gz: Path, order: str, seed: int = 0) -> Path:
    """The same rows as `csv_gz` (a generated file, in activity_id order) in `order`: the file
    itself for "id"; for "target", sorted by target_id (stable: id order within a target); for
    "shuffled", in a random order drawn from `seed`. Written once, in a child process (reading
    24M rows takes a few GB), cached beside it, quoted as the generator quotes (only where
    needed) so that only the order differs."""
    if order == "id":
        return csv_gz
    if order not in ORDERS:
        raise ValueError(f"unknown row order {order!r}: one of {', '.join(ORDERS)}")
    path = csv_gz.with_name(csv_gz.name.replace(".csv.gz", f"-{order}.csv.gz"))
    if not path.exists():
        tmp = path.with_name(f"tmp-{os.getpid()}-{path.name}")
        subprocess.run([sys.executable, "-m", "bench.data", str(csv_gz), order, str(seed),
                        str(tmp)], check=True, cwd=Path(__file__).resolve().parents[1])
        tmp.replace(path)
    return path


def _write_ordered(src: Path, order: str, seed: int, out: Path) -> None:
    import csv

    import numpy as np

    try:
        from isal import igzip as gz
    except ImportError:  # pragma: no cover - ISA-L is a dependency of molstream
        import gzip as gz
    reader = pacsv.open_csv(
        src, read_options=pacsv.ReadOptions(block_size=8 << 20),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={c.name: pa.string() for c in COLUMNS},
            strings_can_be_null=True, quoted_strings_can_be_null=False))
    table = reader.read_all()
    if order == "target":
        keys = np.array(table.column("target_id").cast(pa.int64()).to_numpy(zero_copy_only=False))
        take = np.argsort(keys, kind="stable")
    else:
        take = np.random.default_rng(seed).permutation(table.num_rows)
    indices = pa.array(take, pa.int64())
    names = table.column_names
    columns = []
    for name in names:  # one column at a time: the source's column freed as it goes
        columns.append(table.column(name).take(indices))
        table = table.drop_columns([name])
    table = pa.table(columns, names=names)
    del columns
    with gz.open(out, "wt", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(names)
        for batch in table.to_batches(max_chunksize=65_536):
            w.writerows(zip(*(c.to_pylist() for c in batch.columns), strict=True))


def tsv_zstd(csv_gz: Path) -> Path:
    """The same rows as `csv_gz`, tab-separated and zstd-compressed (cached beside it): what
    ChEMBL's deposition files and many mirrors serve."""
    import csv
    import gzip

    import zstandard

    path = csv_gz.with_name(csv_gz.name.replace(".csv.gz", ".tsv.zst"))
    if not path.exists():
        tmp = path.with_name(f"tmp-{os.getpid()}-{path.name}")
        with gzip.open(csv_gz, "rt", newline="", encoding="utf-8") as src, open(tmp, "wb") as raw, \
                zstandard.ZstdCompressor(level=3).stream_writer(raw) as zst:
            import io
            out = io.TextIOWrapper(zst, encoding="utf-8", newline="")
            csv.writer(out, delimiter="\t", lineterminator="\n").writerows(csv.reader(src))
            out.flush()
            out.detach()
        tmp.replace(path)
    return path


def read_rows(path: Path, limit: int | None = None) -> pa.Table:
    """Typed columns of the file (empty field → null), optionally only its first `limit` rows."""
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=8 << 20),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={c.name: _TYPES.get(c.kind, pa.string()) for c in COLUMNS},
            strings_can_be_null=True, quoted_strings_can_be_null=True),
    )
    batches, n = [], 0
    for batch in reader:
        batches.append(batch)
        n += batch.num_rows
        if limit is not None and n >= limit:
            break
    table = pa.Table.from_batches(batches, reader.schema)
    return table.slice(0, limit) if limit is not None else table


if __name__ == "__main__":  # python -m bench.data SRC ORDER SEED OUT (`ordered`'s child)
    _write_ordered(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
