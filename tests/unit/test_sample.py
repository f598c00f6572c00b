import gzip
import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest
from click.testing import CliRunner
from molstream import contract
from molstream.cli import main
from molstream.sample import LEGACY_COLUMNS, REAL_DISTINCT_PER_100K, SHAPES, generate

# sha256 of generate(path, 2_000, seed=0) with the generator as it was before the chembl shape
# (then the only one): the legacy shape must keep writing exactly these bytes.
LEGACY_2000_SEED_0 = "1deaee4ca619550a8eb6562e48afb3b58eac16160eb4b3d319b3f3e3c02aab68"
ROWS = 100_000


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read(path) -> pa.Table:
    """The file as contract.validate takes it: every column a string, plus the line number."""
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types={c: pa.string() for c in contract.COLUMN_NAMES}))
    return table.add_column(0, contract.LINE,
                            pa.array(np.arange(2, table.num_rows + 2), pa.int64()))


def _non_empty(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.filter(column, pc.not_equal(column, ""))


def _share(mask) -> float:
    return pc.sum(mask).as_py() / len(mask)


@pytest.fixture(scope="module")
def chembl_file(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("sample") / "activities.csv", ROWS, seed=0)


@pytest.fixture(scope="module")
def chembl(chembl_file) -> pa.Table:
    return _read(chembl_file)


def test_legacy_shape_is_unchanged(tmp_path):
    assert _sha(generate(tmp_path / "a.csv", 2_000, seed=0, shape="legacy")) == LEGACY_2000_SEED_0
    header = (tmp_path / "a.csv").read_text().splitlines()[0]
    assert header == ",".join(f'"{c}"' for c in LEGACY_COLUMNS)


def test_chembl_is_the_default_and_deterministic(tmp_path):
    a = generate(tmp_path / "a.csv", 5_000, seed=3)
    b = generate(tmp_path / "b.csv", 5_000, seed=3, shape="chembl", chunk_rows=1_000)
    assert a.read_bytes() == b.read_bytes()
    assert generate(tmp_path / "c.csv", 5_000, seed=4).read_bytes() != a.read_bytes()
    # gzip: the same bytes whatever the file is called, inflating to the plain file's.
    g1, g2 = generate(tmp_path / "x.csv.gz", 5_000, seed=3), generate(tmp_path / "y.csv.gz",
                                                                      5_000, seed=3)
    assert g1.read_bytes() == g2.read_bytes()
    assert gzip.decompress(g1.read_bytes()) == a.read_bytes()


def test_unknown_shape(tmp_path):
    with pytest.raises(ValueError, match="unknown sample shape"):
        generate(tmp_path / "a.csv", 10, shape="pubchem")


@pytest.mark.parametrize("rows", [0, 1, 7, 300])
def test_tiny_files_pass_the_contract(tmp_path, rows):
    table = _read(generate(tmp_path / "a.csv", rows, seed=1))
    assert table.num_rows == rows
    assert contract.validate(table, max_field_bytes=100_000)[1] == []


def test_columns_in_chembl_export_order_quoted_only_where_needed(chembl_file):
    with open(chembl_file, encoding="utf-8") as f:
        header, first = f.readline(), f.readline()
        body = f.read()
    assert header.rstrip("\n").split(",") == list(contract.COLUMN_NAMES)
    assert first[0].isdigit()  # numbers are not quoted
    assert '""' in body  # a name with a double quote, escaped by doubling it
    assert '"' in body and ",\"" in body  # fields with commas are quoted


def test_every_row_passes_the_contract(chembl):
    rows, rejected = contract.validate(chembl, max_field_bytes=100_000)
    assert rejected == [] and rows.num_rows == ROWS


def test_distinct_counts_like_the_real_file(chembl):
    for column, real in REAL_DISTINCT_PER_100K.items():
        measured = pc.count_distinct(_non_empty(chembl[column])).as_py()
        assert abs(measured - real) <= 0.15 * real, (column, measured, real)


def test_molecules_and_targets_keep_their_attributes(chembl):
    for key, attributes in (("molecule_id", ("molecule_name", "molecule_max_phase",
                                             "molecule_structure", "molecule_inchi_key")),
                            ("target_id", ("target_name", "target_organism"))):
        grouped = chembl.group_by(key).aggregate([(a, "count_distinct") for a in attributes])
        for a in attributes:
            assert pc.max(grouped[f"{a}_count_distinct"]).as_py() == 1, a


def test_relations(chembl):
    relation = chembl["activity_relation"]
    seen = set(pc.unique(relation).to_pylist())
    assert seen == {"", *contract.RELATIONS}
    assert 0.03 <= _share(pc.equal(relation, "")) <= 0.07
    assert _share(pc.equal(relation, "=")) > 0.7
    for rare in ("<<", ">>"):
        assert 0.005 <= _share(pc.equal(relation, rare)) <= 0.05


def test_values(chembl):
    text = chembl["activity_value"]
    assert 0.05 <= _share(pc.equal(text, "")) <= 0.10
    value = pc.cast(_non_empty(text), pa.float64())
    assert pc.max(value).as_py() >= 1e19
    assert pc.min(value).as_py() < 0
    assert _share(pc.less(value, 0)) < 0.15
    assert _share(pc.not_equal(value, pc.round(value))) > 0.3  # many with decimals
    # ChEMBL's ways of writing numbers, all within the contract's pattern.
    assert pc.any(pc.match_substring(text, "E+")).as_py()
    assert pc.any(pc.match_substring(text, "e+")).as_py()
    assert pc.any(pc.match_substring_regex(text, r"^[0-9]+\.0$")).as_py()


def test_molecules(chembl):
    smiles, key = chembl["molecule_structure"], chembl["molecule_inchi_key"]
    length = pc.utf8_length(smiles)
    assert pc.max(length).as_py() <= 4000
    assert pc.sum(pc.greater_equal(length, 1000)).as_py() > 0  # peptides
    # Biologics: no structure and no InChIKey; every other molecule has a well-formed key.
    no_structure = pc.equal(smiles, "")
    assert 0.005 < _share(no_structure) < 0.08
    assert pc.all(pc.equal(no_structure, pc.equal(key, ""))).as_py()
    assert pc.all(pc.match_substring_regex(_non_empty(key),
                                           r"^[A-Z]{14}-[A-Z]{10}-[A-Z]$")).as_py()
    name = chembl["molecule_name"]
    assert 0.65 <= _share(pc.equal(name, "")) <= 0.85
    assert pc.any(pc.match_substring(name, ",")).as_py()
    assert pc.max(pc.utf8_length(name)).as_py() <= 255
    phase = chembl["molecule_max_phase"]
    assert set(pc.unique(phase).to_pylist()) <= {"", "-1", "0.5", "1", "2", "3", "4", "4.0",
                                                 "2.0"}
    assert {"4", "4.0", "-1", "0.5"} <= set(pc.unique(phase).to_pylist())
    assert _share(pc.equal(phase, "")) > 0.6


def test_ids_and_widths(chembl):
    ids = np.asarray(pc.cast(chembl["activity_id"], pa.int64()))
    assert (np.diff(ids) > 0).all()  # ChEMBL exports are in activity_id order
    assert pc.max(pc.cast(chembl["molecule_id"], pa.int64())).as_py() <= 2_500_000
    assert pc.max(pc.cast(chembl["target_id"], pa.int64())).as_py() <= 120_000
    types = pc.unique(chembl["activity_type"])
    assert pc.max(pc.utf8_length(types)).as_py() <= 250
    assert pc.sum(pc.greater_equal(pc.utf8_length(types), 200)).as_py() >= 3
    assert pc.max(pc.utf8_length(chembl["activity_units"])).as_py() <= 100
    assert pc.max(pc.utf8_length(chembl["target_organism"])).as_py() <= 150
    assert pc.max(pc.utf8_length(chembl["target_name"])).as_py() <= 200
    assert 0 < _share(pc.equal(chembl["target_organism"], "")) < 0.2


def test_heads_are_chembl_vocabulary(chembl):
    def top(column, k):
        counts = pc.value_counts(_non_empty(chembl[column])).to_pylist()
        return [c["values"] for c in sorted(counts, key=lambda c: -c["counts"])[:k]]

    assert "IC50" in top("activity_type", 3) and "Ki" in top("activity_type", 8)
    assert top("activity_units", 2) == ["nM", "%"]
    assert top("target_organism", 1) == ["Homo sapiens"]


def test_cli_shapes(tmp_path):
    runner = CliRunner()
    legacy = tmp_path / "legacy.csv"
    result = runner.invoke(main, ["sample", "--rows", "2000", "--shape", "legacy",
                                  "--out", str(legacy)])
    assert result.exit_code == 0, result.output
    assert _sha(legacy) == LEGACY_2000_SEED_0
    default = tmp_path / "default.csv"
    assert runner.invoke(main, ["sample", "--rows", "500", "--seed", "2",
                                "--out", str(default)]).exit_code == 0
    assert default.read_bytes() == generate(tmp_path / "c.csv", 500, seed=2).read_bytes()
    bad = runner.invoke(main, ["sample", "--shape", "nope", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0
    shape_option = next(p for p in main.commands["sample"].params if p.name == "shape")
    assert tuple(shape_option.type.choices) == SHAPES
