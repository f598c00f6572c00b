"""The chembl shape's fixed vocabularies and constants (data only, independent of the seed):
ChEMBL's own heads (activity types, units, organisms, targets, drugs), the pieces their tails and
the generated molecules and targets are made of, the real file's distinct counts, and
`_vocabulary()`, which builds the vocabularies at the real file's sizes."""

from __future__ import annotations

from functools import cache

from ..contract import WIDTHS

# Distinct values per 100,000 rows of ChEMBL's activities export (an exploration of the real
# file); molecules and targets scale with the rows, the vocabularies are capped at these.
REAL_DISTINCT_PER_100K = {"molecule_id": 3_329, "target_id": 1_043, "activity_type": 447,
                          "activity_units": 236, "target_organism": 59}
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

# standard_relation, and its shares of the rows with one.
_RELATIONS = ("=", ">", "<", ">=", "<=", "~", "<<", ">>")
_RELATION_P = (0.845, 0.065, 0.035, 0.01, 0.008, 0.005, 0.016, 0.016)


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

