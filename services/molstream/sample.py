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
"""

from __future__ import annotations

import gzip
import random
import shutil
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .contract import COLUMN_NAMES, MAX_PHASES, WIDTHS

try:  # ISA-L's gzip (a molstream dependency): the same API, several times zlib's speed
    from isal.igzip import IGzipFile as _GzipFile
except ImportError:  # pragma: no cover - a platform without isal's wheels
    _GzipFile = gzip.GzipFile

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

# ---------------------------------------------------------------------------------------------
# The legacy shape (molstream's first generator; keep its output byte for byte).

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


# ---------------------------------------------------------------------------------------------
# The chembl shape.

# Distinct values per 100,000 rows of ChEMBL's activities export (an exploration of the real
# file); molecules and targets scale with the rows, the vocabularies are capped at these.
REAL_DISTINCT_PER_100K = {"molecule_id": 3_329, "target_id": 1_043, "activity_type": 447,
                          "activity_units": 236, "target_organism": 59}
_BLOCK = 1 << 16  # rows drawn per step (fixed, so that the bytes do not depend on a chunk size)
_FIRST_ACTIVITY_ID = 31_863  # the lowest activity_id of chembl_36's ACTIVITIES
_MAX_MOLREGNO, _MAX_TID = 2_500_000, 120_000

# standard_type: ChEMBL's ACTIVITY_STDS_LOOKUP and frequent types, roughly in frequency order.
_TYPES_HEAD = (
    "IC50", "Potency", "Inhibition", "Ki", "Activity", "MIC", "EC50", "Kd", "GI50",
    "Percent Effect", "AC50", "CC50", "Ratio", "IZ", "Efficacy", "ED50", "Emax", "pA2",
    "Solubility", "T1/2", "LogP", "CL", "AUC", "Cmax", "Km", "F", "Vdss", "ID50", "LD50", "LC50",
    "MIC90", "MIC50", "IC90", "XC50", "TGI", "FC", "Selectivity ratio", "KDAPP", "Tmax", "MRT",
    "fAUC", "CL/F", "Vd", "Vd/F", "Vdss/F", "CL_renal", "LogPapp", "CLogP", "CLogD", "CLogD7.4",
    "IC95", "IC99", "MIC70", "MIC80", "MCC", "IFI", "k_obs", "k_off", "k_on",
    "Residual activity", "Drug uptake", "Relative activity", "Survival", "Ratio IC50",
    "Selectivity", "Tm", "Delta Tm", "pKa", "T/C", "Increase in lifespan", "Cytotoxicity",
    "Toxicity", "Antiviral activity", "Protection", "Reduction", "Stimulation", "Kinact", "kcat",
    "kcat/Km", "Vmax", "Hill coefficient", "EC90", "EC20", "IC25", "IC30", "IC80", "ED80", "ID90",
    "LD90", "Papp", "Efflux ratio", "PPB", "fu", "CLint", "Fraction unbound", "ALogP", "TD50",
    "MTD", "MED", "MEC", "MBC", "MFC", "NOEL", "DC50", "Dmax", "logBB", "Imax", "Displacement",
    "Occupancy", "Binding", "Kb", "KB", "Kis", "Kii", "Ka", "pIC50", "pKi", "pEC50", "pKd",
    "LogD7.4", "logD", "Retention time", "dG", "IC10", "EC10",
    # TG-GATEs / DrugMatrix clinical chemistry and haematology
    "ALB", "ALBGLOB", "ALP", "ALT", "APTT", "AST", "BASO", "BASOLE", "BILDIR", "BILI", "BUN",
    "CALCIUM", "CHLORIDE", "CHOL", "CK", "CO2", "CREAT", "EOS", "EOSLE", "FIBRINO", "GGT", "GLUC",
    "HCT", "HGB", "LDH", "LIPASE", "LYM", "LYMLE", "MCH", "MCHC", "MCV", "MONO", "MONOLE",
    "NEUTLE", "NEUTSG", "PHOS", "PHOSLPD", "PLAT", "POTASSIUM", "PROT", "PT", "RBC", "RBCNUC",
    "RETIRBC", "SODIUM", "TERMBW", "TRIG", "URATE", "WBC", "WEIGHT",
)
# Free-text types of deposited datasets, 200-250 characters (the column holds 250).
_TYPES_LONG = (
    "Inhibition of [3H]dofetilide binding to human ERG potassium channel expressed in HEK293 "
    "cell membranes at 10 uM after 60 mins by scintillation proximity assay, relative to "
    "control (percent specific binding remaining)",
    "Displacement of [125I]iodocyanopindolol from human beta2 adrenergic receptor expressed in "
    "CHO-K1 cell membranes after 90 mins by gamma counting in presence of 100 uM GTP, "
    "expressed as ratio of Ki in absence and presence of GTP (Ki ratio)",
    "Antiproliferative activity against human MCF7 cells assessed as reduction in cell "
    "viability after 72 hrs by sulforhodamine B assay, measured at 10 uM concentration and "
    "expressed as percentage of untreated control cells (cell growth inhibition)",
    "Inhibition of recombinant human cytochrome P450 3A4 mediated midazolam 1'-hydroxylation "
    "preincubated for 30 mins with NADPH before substrate addition, measured by LC-MS/MS, "
    "time-dependent inhibition expressed as IC50 shift fold",
    "Agonist activity at human GPR40 receptor expressed in HEK293 cells assessed as increase "
    "in intracellular calcium level by Fluo-4 AM dye based FLIPR assay, relative to "
    "linoleic acid (maximal response at 10 uM, percent of linoleic acid)",
)
_BINDING = (("[3H]spiperone", "dopamine D2 receptor"), ("[3H]DAMGO", "mu opioid receptor"),
            ("[125I]iodocyanopindolol", "beta-adrenergic receptor"),
            ("[3H]prazosin", "alpha1 adrenergic receptor"),
            ("[3H]nitrendipine", "L-type calcium channel"), ("[3H]dofetilide", "hERG channel"),
            ("[3H]CP-55940", "cannabinoid CB1 receptor"),
            ("[3H]epibatidine", "nicotinic acetylcholine receptor alpha4beta2"),
            ("[3H]flunitrazepam", "GABA-A receptor benzodiazepine site"),
            ("[3H]ketanserin", "5-HT2A receptor"), ("[3H]8-OH-DPAT", "5-HT1A receptor"),
            ("[3H]raclopride", "dopamine D2 receptor"),
            ("[3H]N-methylscopolamine", "muscarinic M1 receptor"),
            ("[3H]QNB", "muscarinic acetylcholine receptor"),
            ("[3H]citalopram", "serotonin transporter"), ("[3H]WIN35428", "dopamine transporter"),
            ("[3H]nisoxetine", "norepinephrine transporter"), ("[3H]MK-801", "NMDA receptor"),
            ("[3H]diprenorphine", "opioid receptor"), ("[3H]U69593", "kappa opioid receptor"),
            ("[3H]DPDPE", "delta opioid receptor"), ("[3H]CCPA", "adenosine A1 receptor"),
            ("[3H]ZM241385", "adenosine A2A receptor"), ("[3H]mepyramine", "histamine H1 receptor"),
            ("[125I]Sar1-Ile8-angiotensin II", "angiotensin AT1 receptor"),
            ("[3H]PK11195", "translocator protein"), ("[3H]mesulergine", "5-HT2C receptor"),
            ("[3H]GR65630", "5-HT3 receptor"), ("[3H]batrachotoxin", "sodium channel site 2"))
_TISSUES = ("rat brain membranes", "rat striatal membranes", "guinea pig cerebellum",
            "CHO cell membranes", "HEK293 cell membranes", "rat cerebral cortex",
            "human recombinant receptor expressed in CHO cells", "bovine striatum",
            "Sf9 cell membranes")
_ASSAY_READOUTS = ("Inhibition", "Activity", "Residual activity", "Stimulation", "Viability",
                   "Cell growth", "Enzyme activity", "Binding", "Uptake", "Response")
_ASSAY_CONTEXTS = ("at 1 uM", "at 10 uM", "at 100 nM", "at 30 uM", "(% of control)",
                   "relative to control", "after 24 hrs", "after 72 hrs", "at 50 ug/ml",
                   "(% of vehicle)")

# standard_units: ChEMBL's standard units first, then non-standardised strings that occur.
_UNITS_HEAD = (
    "nM", "%", "ug.mL-1", "uM", "mg.kg-1", "hr", "mL.min-1.kg-1", "L.kg-1", "ng.mL-1",
    "ng.hr.mL-1", "umol.kg-1", "U.L-1", "IU.L-1", "s-1", "M-1.s-1", "min", "mM", "M", "mg/L",
    "-", "cells.uL-1", "mEq.L-1", "g", "pg", "fL", "mm", "s", "uM.hr", "mL.min-1.g-1",
    "uL.min-1.(10^6cells)-1", "/100WBC", "10'-6M", "10'-7M", "um", "nm", "uM kg-1", "nM kg-1",
    "umol/Kg", "nmol", "10'-2umol", "10^-2mm", "ug ml-1", "mg kg-1", "ng/ml", "mg/ml",
    "ug kg-1", "mg/kg/day", "mg kg-1 day-1", "10'-4 ug/ml", "10'-6 ug/ml", "10'-8mg/ml",
    "10'-3 ug/ml", "10'-1 ug/ml", "M kg-1", "ng/L", "pmg kg-1", "ng ml-1", "Hz", "mg.dL-1",
    "g.dL-1", "10'3/uL", "10'6/uL", "kcal/mol", "kJ/mol", "degrees C", "10'-5M", "10'-8M",
)
_AMOUNTS = ("pmol", "nmol", "umol", "mmol", "pg", "ng", "ug", "mg")
_PER = ("mL-1", "L-1", "kg-1", "g-1", "mg-1", "min-1", "hr-1", "day-1", "cm-2", "(10^6cells)-1")
_CONCENTRATION_UNITS = {"nM", "uM", "mM", "M", "ug.mL-1", "ng.mL-1", "mg/L", "ng/ml", "mg/ml",
                        "ug ml-1", "ng ml-1", "um", "nm", "10'-6M", "10'-7M", "10'-5M",
                        "10'-8M"}

# target_organism: real names from ChEMBL's target dictionary, roughly in frequency order.
_ORGANISMS = (
    "Homo sapiens", "Rattus norvegicus", "Mus musculus", "Bos taurus", "Escherichia coli",
    "Plasmodium falciparum", "Cavia porcellus", "Staphylococcus aureus",
    "Mycobacterium tuberculosis", "Human immunodeficiency virus 1", "Sus scrofa",
    "Canis lupus familiaris", "Oryctolagus cuniculus", "Saccharomyces cerevisiae S288c",
    "Candida albicans", "Pseudomonas aeruginosa", "Macaca mulatta", "Danio rerio",
    "Trypanosoma brucei", "Escherichia coli K-12", "Toxoplasma gondii", "Ovis aries",
    "Gallus gallus", "Cricetulus griseus", "Klebsiella pneumoniae", "Acinetobacter baumannii",
    "Streptococcus pneumoniae R6", "Bacillus anthracis", "Plasmodium falciparum (isolate 3D7)",
    "Mycobacterium tuberculosis (strain ATCC 25618 / H37Rv)", "Staphylococcus aureus (strain COL)",
    "Escherichia coli (strain K12)", "Escherichia coli O157:H7", "Caenorhabditis elegans",
    "Influenza A virus (A/Puerto Rico/8/1934(H1N1))", "Hepatitis B virus adw2/Southern-Africa/Cai",
    "Human herpesvirus 5", "Human herpesvirus 8", "Human papillomavirus type 16",
    "Influenza A virus (A/Udorn/307/1972(H3N2))",
    "Candida albicans (strain SC5314 / ATCC MYA-2876) (Yeast)", "Schizosaccharomyces pombe 972h-",
    "Enterobacter cloacae", "Citrobacter freundii", "Klebsiella oxytoca", "Pseudomonas stutzeri",
    "Streptococcus pneumoniae serotype 4 (strain ATCC BAA-334 / TIGR4)",
    "Streptococcus dysgalactiae subsp. equisimilis",
    "Streptococcus mutans serotype c (strain ATCC 700610 / UA159)",
    "Vibrio cholerae serotype O1 (strain ATCC 39315 / El Tor Inaba N16961)",
    "Aeromonas hydrophila", "Haemophilus influenzae (strain 86-028NP)",
    "Helicobacter pylori (strain ATCC 700392 / 26695) (Campylobacterpylori)",
    "Stenotrophomonas maltophilia", "Peptoclostridium difficile",
    "Clostridium tetani (strain Massachusetts / E88)", "Aedes aegypti", "Lucilia cuprina",
    "Hordeum vulgare",
)
# target pref_names: real ones first, then families filled with members.
_TARGETS_HEAD = (
    "Epidermal growth factor receptor erbB1", "Acetylcholinesterase", "HERG",
    "Human immunodeficiency virus type 1 protease", "Maltase-glucoamylase",
    "ATP-binding cassette sub-family C member 9", "cGMP-specific 3',5'-cyclic phosphodiesterase",
    "Enoyl-[acyl-carrier-protein] reductase", "Dopamine D2 receptor", "Cytochrome P450 3A4",
    "Tyrosine-protein kinase ABL", "Carbonic anhydrase II", "Beta-2 adrenergic receptor",
    "Mu opioid receptor", "Cannabinoid CB1 receptor", "Serotonin transporter",
    "Adenosine A2a receptor", "Histamine H3 receptor", "Thrombin", "Coagulation factor X",
    "Cyclooxygenase-2", "Estrogen receptor alpha", "Glucocorticoid receptor",
    "Vascular endothelial growth factor receptor 2",
    "Phosphatidylinositol 4,5-bisphosphate 3-kinase catalytic subunit alpha isoform",
    "Cyclin-dependent kinase 2/G1/S-specific cyclin-E1",
    "GABA-A receptor; alpha-1/beta-3/gamma-2",
    "Potassium voltage-gated channel subfamily H member 2",
)
_CELL_LINES = (("MCF7", "Homo sapiens"), ("HeLa", "Homo sapiens"), ("A549", "Homo sapiens"),
               ("HepG2", "Homo sapiens"), ("HCT-116", "Homo sapiens"), ("K562", "Homo sapiens"),
               ("PC-3", "Homo sapiens"), ("HL-60", "Homo sapiens"), ("MDA-MB-231", "Homo sapiens"),
               ("NCI-H460", "Homo sapiens"), ("HT-29", "Homo sapiens"), ("L1210", "Mus musculus"),
               ("P388", "Mus musculus"), ("CHO", "Cricetulus griseus"), ("Vero", ""))
_NON_MOLECULAR = ("Unchecked", "ADMET", "NON-PROTEIN TARGET", "No relevant target",
                  "Plasma", "Liver microsomes")
_TARGET_FAMILIES = (
    "Tyrosine-protein kinase {g}", "Serine/threonine-protein kinase {g}",
    "Carbonic anhydrase {r}", "Cytochrome P450 {s}{L}{n}", "Histone deacetylase {n}",
    "Solute carrier family {n} member {n}", "Zinc finger protein {g}",
    "Probable G-protein coupled receptor {n}", "Ubiquitin carboxyl-terminal hydrolase {n}",
    "Bromodomain-containing protein {s}", "Metabotropic glutamate receptor {s}",
    "Cyclin-dependent kinase {n}", "Matrix metalloproteinase-{n}",
    "Sodium channel protein type {r} subunit alpha",
    "Potassium voltage-gated channel subfamily {L} member {n}",
    "Nuclear receptor subfamily {s} group {L} member {s}",
    "cAMP-specific 3',5'-cyclic phosphodiesterase {s}{L}",
    "Phosphatidylinositol 4,5-bisphosphate 3-kinase catalytic subunit {greek} isoform",
    "5-hydroxytryptamine receptor {s}{L}", "Muscarinic acetylcholine receptor M{s}",
    "Neuronal acetylcholine receptor; alpha{s}/beta{s}", "Dual specificity protein kinase {g}",
    "Mitogen-activated protein kinase {n}", "Protein arginine N-methyltransferase {s}",
    "Transient receptor potential cation channel subfamily {L} member {s}",
    "Aldo-keto reductase family 1 member {L}{s}", "UDP-glucuronosyltransferase {s}{L}{n}",
    "Glutamate receptor ionotropic, NMDA {s}{L}", "Lysine-specific demethylase {s}{L}",
    "{g} protein", "Putative uncharacterized protein {g}",
)
# Targets of bacteria, fungi, parasites and viruses (pref_names ChEMBL uses for such targets).
_MICROBE_TARGETS = (
    "DNA gyrase subunit B", "DNA gyrase subunit A", "Dihydrofolate reductase",
    "Enoyl-[acyl-carrier-protein] reductase [NADH]", "Beta-lactamase TEM",
    "Penicillin-binding protein 2a", "Peptide deformylase", "Thymidylate kinase",
    "UDP-N-acetylglucosamine 1-carboxyvinyltransferase", "Glutamine synthetase",
    "Dihydroorotate dehydrogenase", "Lanosterol 14-alpha demethylase", "Falcipain-2",
    "Trypanothione reductase", "Reverse transcriptase", "Integrase", "Neuraminidase",
    "Protease", "DNA polymerase", "Polymerase acidic protein", "Capsid protein p24",
    "Methionine aminopeptidase", "Topoisomerase IV subunit A", "Cytochrome P450 51",
    "3-oxoacyl-[acyl-carrier-protein] synthase 3", "Chorismate mutase",
    "Glucosamine-6-phosphate synthase", "Isocitrate lyase", "Pantothenate synthetase",
)
_VERTEBRATES = frozenset(("Homo sapiens", "Rattus norvegicus", "Mus musculus", "Bos taurus",
                          "Cavia porcellus", "Sus scrofa", "Canis lupus familiaris",
                          "Oryctolagus cuniculus", "Macaca mulatta", "Danio rerio", "Ovis aries",
                          "Gallus gallus", "Cricetulus griseus"))
_GREEK = ("alpha", "beta", "gamma", "delta", "epsilon")
_ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "IX", "XII", "XIII", "XIV")

# Molecules: real drugs (name, max_phase, SMILES) for the most tested ones, then generated.
_DRUGS = (
    ("CIPROFLOXACIN", "4", "O=C(O)c1cn(C2CC2)c2cc(N3CCNCC3)c(F)cc2c1=O"),
    ("CEFOTAXIME", "4", "CO/N=C(\\C(=O)N[C@@H]1C(=O)N2C(C(=O)O)=C(COC(C)=O)CS[C@H]12)c1csc(N)n1"),
    ("LEVOFLOXACIN", "4", "C[C@H]1COc2c(N3CCN(C)CC3)c(F)cc3c(=O)c(C(=O)O)cn1c23"),
    ("PACTAMYCIN", "", "CC(=O)c1cccc(N[C@H]2[C@H](N)[C@@](NC(=O)N(C)C)([C@H](C)O)[C@@](C)(O)"
                       "[C@@]2(O)COC(=O)c2c(C)cccc2O)c1"),
    ("ASPIRIN", "4", "CC(=O)Oc1ccccc1C(=O)O"),
    ("CAFFEINE", "4", "Cn1c(=O)c2c(ncn2C)n(C)c1=O"),
    ("IMATINIB", "4", "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1"),
    ("STAUROSPORINE", "", "CN[C@@H]1C[C@H]2O[C@@](C)([C@@H]1OC)n1c3ccccc3c3c4c(c5c6ccccc6n2c5c31)"
                          "CNC4=O"),
)
_INN_STEMS = ("ABE", "ACI", "ADA", "ALO", "AMI", "ATO", "BAR", "BEN", "BRI", "CAN", "CEF", "CIP",
              "DAB", "DAR", "DOX", "ELA", "ERI", "ESO", "FLU", "GAB", "GEF", "IMA", "IRB", "LAP",
              "LEV", "LOS", "MER", "MET", "NIL", "OLA", "PAZ", "RAL", "RIT", "ROS", "SUN", "TAM",
              "TEL", "TOF", "VAL", "VOR", "ZAN", "QUI", "PRO", "NOR", "DEX", "SEL")
_INN_MIDDLES = ("", "A", "I", "O", "AZ", "ER", "ON", "IL", "OX", "AN", "EL", "UR")
_INN_SUFFIXES = ("TINIB", "AZOLE", "MYCIN", "PRIL", "SARTAN", "OLOL", "FLOXACIN", "VIR", "STATIN",
                 "PRAZOLE", "DIPINE", "CILLIN", "LUKAST", "GLIPTIN", "PAMIL", "TIDINE", "SETRON",
                 "TRIPTAN", "PARIN", "ZOLAM", "CAINE", "DRONATE", "BUTEROL", "CICLIB", "LISIB",
                 "PARIB", "RAFENIB", "DEGIB", "TEGRAVIR", "BUVIR")
_BIOLOGIC_SUFFIXES = ("MAB", "ZUMAB", "XIMAB", "CEPT", "KINRA", "TIDE", "ASE", "PLERMIN")
_SALTS = ("HYDROCHLORIDE", "MESYLATE", "SODIUM", "SULFATE", "MALEATE", "TARTRATE", "CITRATE",
          "FUMARATE", "BESYLATE", "POTASSIUM", "ACETATE", "HYDROBROMIDE")
_CODES = ("SB", "GW", "AZD", "MK", "BMS", "LY", "PF", "GSK", "JNJ", "RO", "ABT", "CP", "SCH",
          "BAY", "TAK", "ONO", "CGP", "AG", "PD", "WAY")
_CHEM_PARTS = ("N,N-DIMETHYL", "2,3-DIHYDRO", "4'-HYDROXY", "2,4-DICHLORO", "1,2,3,4-TETRAHYDRO",
               "3,5-DIMETHOXY", "N-METHYL", "6-FLUORO", "2-AMINO", "4-CHLORO", "7-NITRO",
               "3',4'-DIMETHOXY", "1H-INDOL-3-YL", "2-PYRIDINYL", "PHENYL", "BENZYL", "CYCLOHEXYL")
_CHEM_BASES = ("BENZAMIDE", "QUINAZOLIN-4-AMINE", "PYRIMIDINE", "INDOLE", "PIPERAZINE",
               "BENZOIC ACID", "TRYPTAMINE", "FLAVONE", "COUMARIN", "XANTHINE", "PURINE",
               "THIAZOLIDINE-2,4-DIONE", "CHALCONE", "SULFONAMIDE", "UREA")
_NAME_TAGS = ("FORM A", "ISOMER B", "ALPHA", "BETA", "RACEMIC", "(+)", "(-)")
_PHASES = ("", "-1", "0.5", "1", "2", "3", "4", "4.0", "2.0")
_PHASE_P_NAMED = (0.40, 0.04, 0.02, 0.08, 0.10, 0.06, 0.25, 0.03, 0.02)
_PHASE_P_UNNAMED = (0.975, 0.005, 0.004, 0.006, 0.005, 0.002, 0.003, 0.0, 0.0)

# SMILES pieces that close their own rings, so that any concatenation reads as SMILES.
_CORES = ("c1ccccc1", "c1ccncc1", "c1ccc2ccccc2c1", "c1cnc2ccccc2n1", "C1CCNCC1", "C1CCOCC1",
          "c1ccsc1", "c1ccoc1", "c1cn[nH]c1", "c1ncncn1", "C1CCCCC1", "c1ccc2[nH]ccc2c1",
          "N1CCNCC1", "C1CC1", "c1ccc(F)cc1", "c1ccc(Cl)cc1", "c1ccc(OC)cc1", "c1cc(F)cc(F)c1",
          "c1ccc(C(F)(F)F)cc1", "c1nc2ccccc2s1", "c1ccc2c(c1)OCO2", "c1cc(C)no1", "n1ccnc1")
_LINKERS = ("C", "CC", "CCC", "C(=O)N", "NC(=O)", "C(=O)O", "OC", "O", "N", "S", "S(=O)(=O)N",
            "NC(=O)N", "C=C", "C#C", "CN", "OCC", "[C@@H](C)", "[C@H](O)", "C(=O)", "N(C)",
            "/C=C/", "[C@@H]1CC[C@H](CC1)")
_ENDS = ("C", "O", "N", "F", "Cl", "C(=O)O", "C(N)=O", "CC", "OC", "C#N", "N1CCOCC1",
         "N1CCN(C)CC1", "S(C)(=O)=O", "C(F)(F)F", "Br", "CO", "N(C)C", "C(C)C")
_SALT_SMILES = (".Cl", ".O=C(O)C(F)(F)F", ".O=C(O)/C=C\\C(=O)O", ".CS(=O)(=O)O", ".O=S(=O)(O)O")
_RESIDUES = tuple(f"N[C@@H]({r})C(=O)" for r in (
    "C", "CC(C)C", "C(C)C", "Cc1ccccc1", "Cc1ccc(O)cc1", "CCCCN", "CCCNC(=N)N", "CC(=O)O",
    "CCC(=O)O", "CO", "[C@@H](C)O", "CS", "CCSC", "Cc1c[nH]c2ccccc12", "Cc1c[nH]cn1", "CC(N)=O",
    "CCC(N)=O", "[C@@H](C)CC")) + ("NCC(=O)", "N1CCC[C@H]1C(=O)")


def _unique(names) -> list[str]:
    seen: set[str] = set()
    return [n for n in names if not (n in seen or seen.add(n))]


@cache
def _vocabulary() -> dict[str, tuple[str, ...]]:
    """The fixed vocabularies (independent of the seed, as ChEMBL's are): activity types,
    units and organisms, each at the size of the real file's (head first)."""
    n_types = REAL_DISTINCT_PER_100K["activity_type"]
    tail = [f"Inhibition of {lig} binding to {site} in {tissue}"
            for tissue in _TISSUES for lig, site in _BINDING][::2]
    tail += [f"{r} {c}" for c in _ASSAY_CONTEXTS for r in _ASSAY_READOUTS]
    tail += [f"Ratio {a}/{b}" for a in ("IC50", "Ki", "EC50", "Kd")
             for b in ("IC50", "Ki", "EC50", "Kd") if a != b]
    tail += [f"Ratio {p} ({pair})" for p in ("IC50", "Ki", "EC50") for pair in (
        "D3/D2", "mu/delta", "COX-1/COX-2", "CB2/CB1", "A1/A2A", "H1/H3", "5-HT1A/5-HT2A",
        "beta1/beta2", "mutant/wild type")]
    tail += [f"{p} ({s})" for p in ("IC50", "EC50", "Ki", "Kd") for s in (
        "mutant", "wild type", "in presence of serum", "in presence of 50% human serum",
        "shift", "reversal", "time-dependent")]
    types = _unique([*_TYPES_HEAD, *_TYPES_LONG[:2], *tail, *_TYPES_LONG[2:]])
    # Two long free-text types early in the tail, three at its very end (kept there when the
    # tail is cut to the real count).
    types = types[:n_types - len(_TYPES_LONG[2:])] + list(_TYPES_LONG[2:])
    n_units = REAL_DISTINCT_PER_100K["activity_units"]
    unit_tail = [f"{a}.{p}" for p in _PER for a in _AMOUNTS]
    unit_tail += [f"{a}.{p}.{q}" for p, q in (("min-1", "mg-1"), ("hr-1", "kg-1"),
                                              ("day-1", "kg-1"), ("mL-1", "hr-1"),
                                              ("min-1", "(10^6cells)-1")) for a in _AMOUNTS]
    unit_tail += [f"10'-{k}{u}" for u in ("M", " ug/ml", "mg/ml", "umol") for k in range(1, 13)]
    unit_tail += [f"{a}/{d}" for d in ("mL", "L", "kg", "mg protein", "min/mg protein")
                  for a in _AMOUNTS]
    units = _unique([*_UNITS_HEAD, *unit_tail])[:n_units]
    organisms = _ORGANISMS[:REAL_DISTINCT_PER_100K["target_organism"]]
    assert len(types) == n_types and len(units) == n_units and len(organisms) == 59
    assert max(map(len, types)) <= WIDTHS["activity_type"]
    assert max(map(len, units)) <= WIDTHS["activity_units"]
    assert max(map(len, organisms)) <= WIDTHS["target_organism"]
    return {"activity_type": tuple(types), "activity_units": tuple(units),
            "target_organism": tuple(organisms)}


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


_RELATIONS = ("=", ">", "<", ">=", "<=", "~", "<<", ">>")
_RELATION_P = (0.845, 0.065, 0.035, 0.01, 0.008, 0.005, 0.016, 0.016)


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
