"""Deterministic generator of ChEMBL-like activity CSV files, for tests, local runs and benchmarks.

Two shapes (`SHAPES`); the same (rows, seed, shape) always gives the same bytes:

- "chembl" (the default) is shaped like ChEMBL's activities export: columns in the export's
  order (`contract.COLUMN_NAMES`), activity ids increasing, fields quoted only where RFC 4180
  needs it, and proportions like the real file's. A 100,000-row stretch of the real export
  holds 3,329 distinct molecules, 1,043 targets, 447 activity types, 236 units and 59 target
  organisms; molecules (≈3.3% of the rows) and targets (≈1.04%) scale with the rows, the
  vocabularies are capped at those counts. The heads of the vocabularies are ChEMBL's own
  (IC50, Potency, Inhibition, Ki …; nM, %, ug.mL-1 …; Homo sapiens, Rattus norvegicus …),
  drawn with Zipf-like frequencies; their long tails are plausible names in ChEMBL's style,
  free-text types of up to 250 characters included. Values run from negative to 1e20-scale
  outliers, relations include << and >>, 1% of the molecules are peptides with SMILES of
  1,000-4,000 characters and 3% are biologics without a structure or InChIKey. Every row
  passes the contract.
- "legacy" is molstream's first generator, kept byte for byte: columns in `LEGACY_COLUMNS`
  order, molecules and targets from pools, names with commas and quotes, every field quoted.

Either way molecules and targets repeat across rows with the same attributes, as in a real
export. Rows are built as whole NumPy/Arrow columns; only the pools (a few percent of the rows)
are built one entry at a time.

This package holds `generate()`, the entry point; `legacy` the legacy shape, `chembl` the chembl
shape's generation code and `chembl_vocabulary` its vocabularies and constants.
"""

from __future__ import annotations

from pathlib import Path

from .chembl import _generate_chembl
from .chembl_vocabulary import REAL_DISTINCT_PER_100K
from .legacy import LEGACY_COLUMNS, _generate_legacy

__all__ = ["LEGACY_COLUMNS", "REAL_DISTINCT_PER_100K", "SHAPES", "generate"]

SHAPES = ("chembl", "legacy")


def generate(path: Path, rows: int, *, seed: int = 0, shape: str = "chembl",
             chunk_rows: int = 200_000) -> Path:
    """Write `rows` activity rows of `shape` to `path` (gzip-compressed when it ends in .gz).

    `chunk_rows` is the legacy shape's rows per step (its bytes depend on it, as they always
    did); the chembl shape steps through fixed blocks, so its bytes do not."""
    if shape == "legacy":
        return _generate_legacy(path, rows, seed=seed, chunk_rows=chunk_rows)
    if shape != "chembl":
        raise ValueError(f"unknown sample shape {shape!r} (one of {', '.join(SHAPES)})")
    return _generate_chembl(path, rows, seed=seed)
