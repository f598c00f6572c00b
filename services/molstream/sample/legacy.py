"""The legacy shape: molstream's first sample generator, kept byte for byte (columns in
`LEGACY_COLUMNS` order, molecules and targets from pools, every field quoted), and its
vocabularies. The entry point is `molstream.sample.generate(..., shape="legacy")`."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from ..contract import MAX_PHASES

ACTIVITY_TYPES = ("IC50", "Ki", "EC50", "Kd", "Potency", "Inhibition", "Activity", "GI50", "MIC")
UNITS = ("nM", "uM", "%", "ug.mL-1", "mM", "")
RELATIONS = ("=", "=", "=", "=", "<", ">", "<=", ">=", "~", "")
ORGANISMS = ("Homo sapiens", "Rattus norvegicus", "Mus musculus", "Escherichia coli",
             "Plasmodium falciparum", "Saccharomyces cerevisiae", "Bos taurus", "")
_NAME_PARTS = ("ASPIRIN", "IMATINIB", "CAFFEINE", "N,N-DIMETHYL", "4'-HYDROXY", '"ALPHA"',
               "BETA-LACTAM", "2,3-DIHYDRO", "METHYL", "ACETYL", "PHENYL")
_TARGET_PARTS = ("Kinase", "Receptor", "Protease", "Tyrosine-protein kinase ABL1",
                 "Cytochrome P450 3A4", "Dopamine D2 receptor", 'Protein "X", isoform 2')
_SMILES_ATOMS = ("C", "c1ccccc1", "N", "O", "Cl", "F", "C(=O)", "[C@@H]", "S(=O)(=O)", "CC", "n")
_LETTERS = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype="S1")
# The column order of molstream's first sample files (still a valid order: any order is).
LEGACY_COLUMNS = ("activity_id", "molecule_id", "molecule_name", "molecule_max_phase",
                  "molecule_structure", "molecule_inchi_key", "target_id", "target_name",
                  "target_organism", "activity_type", "activity_units", "activity_value",
                  "activity_relation")


def _generate_legacy(path: Path, rows: int, *, seed: int, chunk_rows: int) -> Path:
    """The legacy shape: molstream's first generator, unchanged."""
    rng = np.random.default_rng(seed)
    molecules = _molecule_pool(rng, max(10, rows // 8))
    targets = _target_pool(rng, max(5, rows // 200))
    raw = path.with_suffix("") if path.suffix == ".gz" else path
    options = pacsv.WriteOptions(include_header=True, quoting_style="needed")
    with pacsv.CSVWriter(raw, pa.schema([(n, pa.string()) for n in LEGACY_COLUMNS]),
                         write_options=options) as writer:
        next_id = 1
        for start in range(0, rows, chunk_rows):
            n = min(chunk_rows, rows - start)
            writer.write_table(_activities(rng, n, next_id, molecules, targets))
            next_id += 3 * n
    if raw != path:
        with open(raw, "rb") as src, gzip.open(path, "wb", compresslevel=1) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        raw.unlink()
    return path


def _choice(rng: np.random.Generator, options: tuple[str, ...], n: int) -> np.ndarray:
    return np.array(options, dtype=object)[rng.integers(0, len(options), n)]


def _molecule_pool(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    ids = np.sort(rng.choice(np.arange(1, 20 * n), n, replace=False))
    names = np.array([
        "" if r < 0.4 else f"{_NAME_PARTS[a]} {_NAME_PARTS[b]}-{i}"
        for i, (r, a, b) in enumerate(zip(rng.random(n), rng.integers(0, 11, n),
                                          rng.integers(0, 11, n), strict=True))
    ], dtype=object)
    phases = np.array([""] + [f"{p:g}" for p in MAX_PHASES], dtype=object)[
        rng.choice(len(MAX_PHASES) + 1, n, p=[0.5, 0.05, 0.05, 0.05, 0.15, 0.08, 0.06, 0.06])]
    lengths = rng.integers(4, 60, n)
    lengths[rng.random(n) < 0.01] = 400  # a few very long structures
    atoms = np.array(_SMILES_ATOMS, dtype=object)
    smiles = np.array(["".join(atoms[rng.integers(0, len(atoms), k)]) for k in lengths],
                      dtype=object)
    biologic = rng.random(n) < 0.05
    smiles[biologic] = ""
    letters = _LETTERS[rng.integers(0, 26, (n, 25))].view("S25").ravel().astype(str)
    inchi = np.array([f"{s[:14]}-{s[14:24]}-{s[24]}" for s in letters], dtype=object)
    inchi[biologic] = ""
    return {"molecule_id": ids.astype(str).astype(object), "molecule_name": names,
            "molecule_max_phase": phases, "molecule_structure": smiles,
            "molecule_inchi_key": inchi}


def _target_pool(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    ids = np.arange(1, n + 1) * 7 + 100
    names = np.array([f"{_TARGET_PARTS[k]} {i}" for i, k in
                      enumerate(rng.integers(0, len(_TARGET_PARTS), n))], dtype=object)
    return {"target_id": ids.astype(str).astype(object), "target_name": names,
            "target_organism": _choice(rng, ORGANISMS, n)}


def _activities(rng: np.random.Generator, n: int, first_id: int,
                molecules: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> pa.Table:
    activity_ids = first_id + np.cumsum(rng.integers(1, 4, n))
    n_mol = len(molecules["molecule_id"])
    m = np.minimum((rng.pareto(1.2, n) * n_mol / 50).astype(np.int64), n_mol - 1)
    t = rng.integers(0, len(targets["target_id"]), n)
    values = np.round(rng.lognormal(3, 2.5, n), 3).astype(str).astype(object)
    values[rng.random(n) < 0.1] = ""
    negative = (rng.random(n) < 0.02) & (values != "")
    values[negative] = np.char.add("-", values[negative].astype(str)).astype(object)
    columns = {
        "activity_id": activity_ids.astype(str).astype(object),
        **{k: v[m] for k, v in molecules.items()},
        **{k: v[t] for k, v in targets.items()},
        "activity_type": _choice(rng, ACTIVITY_TYPES, n),
        "activity_units": _choice(rng, UNITS, n),
        "activity_value": values,
        "activity_relation": _choice(rng, RELATIONS, n),
    }
    return pa.table({name: pa.array(columns[name], pa.string()) for name in LEGACY_COLUMNS})

