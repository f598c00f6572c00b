"""The chembl shape's generation code: pools of molecules and targets built one entry at a time
from the vocabularies of `chembl_vocabulary`, then rows drawn from them in fixed blocks of whole
NumPy/Arrow columns and written as CSV quoted only where RFC 4180 needs it. The entry point is
`molstream.sample.generate(..., shape="chembl")`."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..contract import COLUMN_NAMES, WIDTHS
from .chembl_vocabulary import (
    _BIOLOGIC_SUFFIXES,
    _CELL_LINES,
    _CHEM_BASES,
    _CHEM_PARTS,
    _CODES,
    _CONCENTRATION_UNITS,
    _CORES,
    _DRUGS,
    _ENDS,
    _FIRST_ACTIVITY_ID,
    _GREEK,
    _INN_MIDDLES,
    _INN_STEMS,
    _INN_SUFFIXES,
    _LINKERS,
    _MAX_MOLREGNO,
    _MAX_TID,
    _MICROBE_TARGETS,
    _NAME_TAGS,
    _NON_MOLECULAR,
    _PHASE_P_NAMED,
    _PHASE_P_UNNAMED,
    _PHASES,
    _RELATION_P,
    _RELATIONS,
    _RESIDUES,
    _ROMAN,
    _SALT_SMILES,
    _SALTS,
    _TARGET_FAMILIES,
    _TARGETS_HEAD,
    _VERTEBRATES,
    REAL_DISTINCT_PER_100K,
    _vocabulary,
)

try:  # ISA-L's gzip (a molstream dependency): the same API, several times zlib's speed
    from isal.igzip import IGzipFile as _GzipFile
except ImportError:  # pragma: no cover - a platform without isal's wheels
    _GzipFile = gzip.GzipFile

_BLOCK = 1 << 16  # rows drawn per step (fixed, so that the bytes do not depend on a chunk size)
_LETTERS = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype="S1")


def _zipf_cdf(n: int, s: float, q: float = 0.0) -> np.ndarray:
    """The cumulative Zipf-Mandelbrot distribution over ranks 1..n (weight 1/(k+q)^s)."""
    w = 1.0 / (np.arange(1, n + 1) + q) ** s
    cdf = np.cumsum(w)
    return cdf / cdf[-1]


def _draw(rng: np.random.Generator, cdf: np.ndarray, n: int) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)


def _csv(value: str) -> str:
    """One CSV field, quoted only where RFC 4180 needs it."""
    if any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _letters(r: random.Random, k: int) -> str:
    return "".join(r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(k))


def _inchi_key(letters: str, smiles: str, protonation: str) -> str:
    """A well-formed standard InChIKey from 22 random letters: the second block is
    UHFFFAOYSA for a structure without stereo."""
    second = letters[14:] + "SA" if "@" in smiles or "/" in smiles else "UHFFFAOYSA"
    return f"{letters[:14]}-{second}-{protonation}"


def _small_molecule(r: random.Random) -> str:
    parts = [r.choice(_ENDS)] if r.random() < 0.7 else []
    for i in range(r.choice((1, 2, 2, 3, 3, 4))):
        if i:
            parts.append(r.choice(_LINKERS))
        parts.append(r.choice(_CORES))
    if r.random() < 0.8:
        parts.append(r.choice(_ENDS))
    if r.random() < 0.05:
        parts.append(r.choice(_SALT_SMILES))
    return "".join(parts)


def _peptide(r: random.Random) -> str:
    """A peptide's SMILES of 1,000-4,000 characters (the column holds 4,000)."""
    target = r.randint(1000, WIDTHS["molecule_structure"])
    parts, length = [], 0
    while True:
        residue = r.choice(_RESIDUES)
        if length + len(residue) + 1 > target:
            break
        parts.append(residue)
        length += len(residue)
    smiles = "".join(parts) + "O"
    while len(smiles) < 1000:  # only if the draw stopped early on a long residue
        smiles = _RESIDUES[0] + smiles
    return smiles


def _molecule_name(r: random.Random, biologic: bool) -> str:
    stem = r.choice(_INN_STEMS) + r.choice(_INN_MIDDLES)
    if biologic:
        return stem + r.choice(_BIOLOGIC_SUFFIXES)
    u = r.random()
    if u < 0.45:
        return stem + r.choice(_INN_SUFFIXES)
    if u < 0.60:
        return f"{stem}{r.choice(_INN_SUFFIXES)} {r.choice(_SALTS)}"
    if u < 0.75:
        return f"{r.choice(_CODES)}-{r.randint(100, 999999)}"
    if u < 0.96:
        parts = [r.choice(_CHEM_PARTS) for _ in range(r.randint(1, 3))]
        return "-".join(parts) + r.choice(("", "-", " ")) + r.choice(_CHEM_BASES)
    if u < 0.985:
        return f'{stem}{r.choice(_INN_SUFFIXES)} "{r.choice(_NAME_TAGS)}"'
    # A long systematic name, up to the column's 255 characters.
    name = r.choice(_CHEM_BASES)
    while True:
        longer = f"{r.choice(_CHEM_PARTS)}-{r.randint(1, 9)}-({name})"
        if len(longer) > WIDTHS["molecule_name"]:
            return name
        name = longer


def _chembl_molecules(rng: np.random.Generator, n: int) -> dict[str, object]:
    """`n` molecules (sorted by molregno): each one's CSV segment (molecule_id … inchi_key), and
    the order of popularity for the Zipf part of the draws."""
    r = random.Random(int(rng.integers(1 << 62)))
    high = max(_MAX_MOLREGNO, 2 * n)
    ids = np.sort(rng.choice(np.arange(1, high + 1), n, replace=False))
    popularity = rng.permutation(n)
    drugs = {int(i): d for i, d in zip(popularity[:len(_DRUGS)], _DRUGS, strict=False)}
    letters = _LETTERS[rng.integers(0, 26, (n, 22))].view("S22").ravel().astype(str)
    protonation = np.where(rng.random(n) < 0.95, "N", _LETTERS[rng.integers(12, 16, n)]
                           .astype(str))
    names: list[str] = []
    segments = []
    for i in range(n):
        kind = r.random()
        biologic, peptide = kind < 0.03, 0.03 <= kind < 0.04
        if i in drugs:
            name, phase, smiles = drugs[i]
            biologic = False
        else:
            named = r.random() < (0.7 if biologic else 0.18)
            if named and names and r.random() < 0.03:
                name = r.choice(names)  # names repeat across molecules now and then
            else:
                name = _molecule_name(r, biologic) if named else ""
            phase = r.choices(_PHASES, _PHASE_P_NAMED if name else _PHASE_P_UNNAMED)[0]
            smiles = "" if biologic else _peptide(r) if peptide else _small_molecule(r)
        if name:
            names.append(name)
        key = "" if biologic else _inchi_key(letters[i], smiles, protonation[i])
        segments.append(f"{ids[i]},{_csv(name)},{phase},{_csv(smiles)},{key}")
    return {"segment": pa.array(segments, pa.string()), "popularity": popularity}


def _target_name(r: random.Random) -> str:
    family = r.choice(_TARGET_FAMILIES)
    out = []
    for piece in family.split("{"):
        field, _, rest = piece.partition("}") if "}" in piece else ("", "", piece)
        out.append({"": "", "n": str(r.randint(1, 20)), "s": str(r.randint(1, 5)),
                    "L": r.choice("ABCDEFGHJK"),
                    "r": r.choice(_ROMAN), "greek": r.choice(_GREEK),
                    "g": _letters(r, r.randint(2, 4)) + str(r.randint(1, 12))}[field] + rest)
    return "".join(out)


def _chembl_targets(rng: np.random.Generator, n: int) -> dict[str, object]:
    """`n` targets: each one's CSV segment (target_id, target_name, target_organism), a random
    order for the sweep and the order of popularity. Every organism of the vocabulary is
    given to some target before the Zipf draws take over."""
    r = random.Random(int(rng.integers(1 << 62)))
    organisms = _vocabulary()["target_organism"]
    high = max(_MAX_TID, 2 * n)
    ids = np.sort(rng.choice(np.arange(4, high + 1), n, replace=False))
    if n >= 10:
        ids[:3] = (1, 2, 3)  # chembl_36's first three: Maltase-glucoamylase, ABCC9, PDE5
    org_cdf = _zipf_cdf(len(organisms), 1.3)
    unseen = list(range(len(organisms)))
    r.shuffle(unseen)
    segments, priority = [], np.empty(n, dtype=np.int64)
    for i in range(n):
        u = r.random()
        organism = None
        if i < 3 and n >= 10:
            name, organism = _TARGETS_HEAD[(4, 5, 6)[i]], "Homo sapiens"
        elif u < 0.05:
            name, organism = r.choice(_CELL_LINES)
        elif u < 0.07:
            name, organism = r.choice(_NON_MOLECULAR), ""
        elif u < 0.17:
            name = r.choice(_TARGETS_HEAD)
        else:
            name = _target_name(r)
        if organism is None and unseen:
            organism = organisms[unseen.pop()]
        elif organism is None:
            organism = "" if r.random() < 0.01 else organisms[
                min(int(np.searchsorted(org_cdf, r.random())), len(organisms) - 1)]
        if organism and organism not in _VERTEBRATES and name not in _NON_MOLECULAR:
            # an ORGANISM target is named after its organism; its proteins have their names
            name = organism if r.random() < 0.3 else r.choice(_MICROBE_TARGETS)
        # The most tested targets: ChEMBL's best-known ones, then human and rat proteins.
        priority[i] = (0 if name in _TARGETS_HEAD
                       else 1 if organism in ("Homo sapiens", "Rattus norvegicus") else 2)
        segments.append(f"{ids[i]},{_csv(name[:WIDTHS['target_name']])},{_csv(organism)}")
    return {"segment": pa.array(segments, pa.string()), "sweep": rng.permutation(n),
            "popularity": np.lexsort((rng.random(n), priority))}


def _preferred_units(types: tuple[str, ...], units: tuple[str, ...]) -> np.ndarray:
    """Per activity type, the index (in ('',) + units) of the units it is mostly given in;
    0 (empty) for dimensionless types."""
    at = {u: i + 1 for i, u in enumerate(units)}
    nm, pct = at["nM"], at["%"]
    rules = (
        (("Ratio", "LogP", "LogD", "logD", "CLogP", "CLogD", "ALogP", "logBB", "pA2", "pK",
          "pIC", "pEC", "Hill", "T/C", "Selectivity", "HCT", "Papp", "LogPapp", "Solubility",
          "FC", "Efflux", "fu", "Fraction"), 0),
        (("ALT", "AST", "ALP", "GGT", "LDH", "CK", "LIPASE"), at["U.L-1"]),
        (("ALB", "PROT", "HGB", "GLUC", "CHOL", "TRIG", "BUN", "CREAT", "BIL", "URATE",
          "CALCIUM", "PHOS"), at["mg.dL-1"]),
        (("SODIUM", "POTASSIUM", "CHLORIDE", "CO2"), at["mEq.L-1"]),
        (("WBC", "RBC", "PLAT", "LYM", "MONO", "EOS", "BASO", "NEUT", "RETI"), at["10'3/uL"]),
        (("MCV",), at["fL"]), (("MCHC",), at["g.dL-1"]), (("MCH",), at["pg"]),
        (("WEIGHT", "TERMBW"), at["g"]), (("PT", "APTT"), at["s"]),
        (("IC", "EC", "Ki", "Kd", "Potency", "GI50", "AC50", "CC50", "XC50", "TGI", "KDAPP",
          "Km", "DC50", "LC50", "Kb", "KB", "Kis", "Kii", "Kinact", "MEC"), nm),
        (("Inhibition", "Activity", "Percent", "Efficacy", "Emax", "Residual", "Relative",
          "Survival", "Protection", "Reduction", "Stimulation", "Viability", "Cell growth",
          "Enzyme", "Binding", "Uptake", "Response", "Displacement", "Occupancy", "Cytotox",
          "F", "PPB", "Antiviral", "Imax", "Dmax", "Drug uptake"), pct),
        (("MIC", "MBC", "MFC", "IZ", "MCC", "IFI"), at["ug.mL-1"]),
        (("ED", "ID", "LD", "TD", "MTD", "MED", "NOEL"), at["mg.kg-1"]),
        (("T1/2", "Tmax", "MRT", "Retention"), at["hr"]),
        (("CL",), at["mL.min-1.kg-1"]), (("Vd",), at["L.kg-1"]), (("AUC", "fAUC"),
                                                                  at["ng.hr.mL-1"]),
        (("Cmax",), at["ng.mL-1"]), (("k_", "kcat"), at["s-1"]), (("Tm", "Delta Tm"),
                                                                   at["degrees C"]),
    )
    out = np.full(len(types), nm, dtype=np.int64)
    for i, t in enumerate(types):
        for prefixes, unit in rules:
            if t == "F" or any(t.startswith(p) for p in prefixes):
                out[i] = pct if t == "F" else unit
                break
    return out


def _unit_kinds(units: tuple[str, ...]) -> np.ndarray:
    """Per index of ('',) + units: 0 concentration-like (lognormal around µM), 1 percent,
    2 anything else (lognormal around 10, sometimes negative)."""
    kinds = [2] + [0 if u in _CONCENTRATION_UNITS else 1 if u == "%" else 2 for u in units]
    return np.array(kinds, dtype=np.int8)


def _generate_chembl(path: Path, rows: int, *, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    vocab = _vocabulary()
    types, units = vocab["activity_type"], vocab["activity_units"]
    n_mol = max(5, round(rows * REAL_DISTINCT_PER_100K["molecule_id"] / 100_000))
    n_tgt = max(3, round(rows * REAL_DISTINCT_PER_100K["target_id"] / 100_000))
    pools = {
        "molecules": _chembl_molecules(rng, n_mol), "targets": _chembl_targets(rng, n_tgt),
        "mol_cdf": _zipf_cdf(n_mol, 1.0), "tgt_cdf": _zipf_cdf(n_tgt, 1.0),
        "type_cdf": _zipf_cdf(len(types), 1.1, 0.3), "unit_cdf": _zipf_cdf(len(units), 1.0),
        "types": pa.array([_csv(t) for t in types], pa.string()),
        "units": pa.array([""] + [_csv(u) for u in units], pa.string()),
        "preferred_unit": _preferred_units(types, units), "unit_kind": _unit_kinds(units),
        "relations": pa.array(("",) + _RELATIONS, pa.string()),
        "relation_cdf": np.cumsum(_RELATION_P) / np.sum(_RELATION_P),
    }
    header = (",".join(COLUMN_NAMES) + "\n").encode()
    gz = path.suffix == ".gz"
    with open(path, "wb") as raw:
        # No file name or time in the gzip header, so the bytes are the same every time.
        out = _GzipFile(filename="", mode="wb", compresslevel=1, fileobj=raw,
                        mtime=0) if gz else raw
        try:
            out.write(header)
            next_id = _FIRST_ACTIVITY_ID - 1
            for start in range(0, rows, _BLOCK):
                data, next_id = _chembl_block(rng, start, min(_BLOCK, rows - start), rows,
                                              next_id, pools)
                out.write(data)
        finally:
            if gz:
                out.close()
    return path


def _pick(rng: np.random.Generator, g: np.ndarray, rows: int, size: int, cdf: np.ndarray,
          popularity: np.ndarray, popular_share: float, sweep: np.ndarray | None) -> np.ndarray:
    """Pool indices for rows at global positions `g`: mostly a sweep through the pool as the
    file goes on (each entry turns up in a stretch of rows, as a paper's compounds and targets
    do, and all of them turn up), the rest Zipf draws of popular entries."""
    jitter = max(1, 4 * rows // size)
    at = np.clip(g + rng.integers(-jitter, jitter + 1, len(g)), 0, rows - 1)
    idx = at * size // rows
    if sweep is not None:
        idx = sweep[idx]
    popular = rng.random(len(g)) < popular_share
    idx[popular] = popularity[_draw(rng, cdf, int(popular.sum()))]
    return idx


def _chembl_block(rng: np.random.Generator, start: int, n: int, rows: int, last_id: int,
                  p: dict) -> tuple[bytes, int]:
    """`n` rows from global position `start`, as CSV bytes, and the last activity_id."""
    g = np.arange(start, start + n, dtype=np.int64)
    gaps = rng.geometric(0.75, n)
    jumps = rng.random(n) < 0.002
    gaps[jumps] += rng.integers(10, 3000, int(jumps.sum()))
    ids = last_id + np.cumsum(gaps)
    mols, tgts = p["molecules"], p["targets"]
    m = _pick(rng, g, rows, len(mols["segment"]), p["mol_cdf"], mols["popularity"], 0.25, None)
    t = _pick(rng, g, rows, len(tgts["segment"]), p["tgt_cdf"], tgts["popularity"], 0.35,
              tgts["sweep"])
    typ = _draw(rng, p["type_cdf"], n)
    unit = p["preferred_unit"][typ]
    other = rng.random(n) < 0.22
    unit[other] = 1 + _draw(rng, p["unit_cdf"], int(other.sum()))
    unit[rng.random(n) < 0.02] = 0

    # Values by the kind of their units; 1e20-scale outliers, negatives; ~7% empty.
    kind = p["unit_kind"][unit]
    value = np.where(kind == 0, rng.lognormal(np.log(3000), 2.2, n),
                     np.where(kind == 1, rng.normal(40, 38, n), rng.lognormal(np.log(10), 2.0, n)))
    value[(kind == 2) & (rng.random(n) < 0.08)] *= -1
    huge = rng.random(n) < 0.0006
    value[huge] = rng.choice(np.array([1e20, 1e21, 2.5e19, 1e22, 5e20, 3e20]), int(huge.sum()))
    value = _round_significant(value, np.where(rng.random(n) < 0.3, 2, 4))
    text = pc.cast(pa.array(value), pa.string())
    upper = huge & (rng.random(n) < 0.5)
    text = pc.if_else(pa.array(upper), pc.utf8_upper(text), text)  # 1E+20 as well as 1e+20
    point = (value == np.rint(value)) & (np.abs(value) < 1e9) & (rng.random(n) < 0.15)
    text = pc.if_else(pa.array(point), pc.binary_join_element_wise(text, ".0", ""), text)
    empty_value = rng.random(n) < 0.07
    text = pc.if_else(pa.array(empty_value), "", text)

    relation = 1 + _draw(rng, p["relation_cdf"], n)
    u = rng.random(n)
    relation[(empty_value & (u < 0.6)) | (~empty_value & (u < 0.01))] = 0

    lines = pc.binary_join_element_wise(
        pc.cast(pa.array(ids), pa.string()), p["types"].take(typ), p["units"].take(unit), text,
        p["relations"].take(relation), mols["segment"].take(m), tgts["segment"].take(t), "", ",")
    # The trailing empty element leaves a comma at each line's end: make it the line break.
    _, offsets, data = lines.buffers()
    ends = np.frombuffer(offsets, np.int32)[lines.offset + 1:lines.offset + n + 1]
    body = np.frombuffer(data, np.uint8)[:ends[-1]].copy() if n else np.zeros(0, np.uint8)
    body[ends - 1] = ord("\n")
    return body.tobytes(), int(ids[-1]) if n else last_id


def _round_significant(value: np.ndarray, digits: np.ndarray) -> np.ndarray:
    """`value` rounded to `digits` significant digits, as the nearest doubles of the short
    decimals (so that they print as 12.5, 0.0034, 250000, not 12.500000000000002)."""
    a = np.abs(value)
    exponent = np.floor(np.log10(np.where(a > 0, a, 1.0))).astype(np.int64)
    k = np.clip(digits - 1 - exponent, -22, 15)
    scale = 10.0 ** np.abs(k)
    up = k >= 0
    out = np.empty_like(value)
    out[up] = np.rint(value[up] * scale[up]) / scale[up]
    out[~up] = np.rint(value[~up] / scale[~up]) * scale[~up]
    return out
