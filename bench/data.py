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
