import pyarrow as pa
import pytest
from molstream.contract import (
    COLUMN_NAMES,
    LINE,
    reason_class,
    validate,
)

GOOD = {
    "activity_id": "31863", "molecule_id": "180094", "molecule_name": 'N,N-"DIMETHYL"',
    "molecule_max_phase": "0.5", "molecule_structure": "CCO",
    "molecule_inchi_key": "BSYNRYMUTXBXSQ-UHFFFAOYSA-N", "target_id": "11", "target_name": "ABL1",
    "target_organism": "Homo sapiens", "activity_type": "IC50", "activity_units": "nM",
    "activity_value": "-1.5e3", "activity_relation": "<=",
}


def _chunk(*rows: dict) -> pa.Table:
    return pa.table({LINE: pa.array(range(2, 2 + len(rows)), pa.int64()),
                     **{c: pa.array([r[c] for r in rows], pa.string()) for c in COLUMN_NAMES}})


def _one(**changes: str):
    return validate(_chunk({**GOOD, **changes}), max_field_bytes=1000)


def test_good_row_is_typed():
    rows, rejected = _one()
    assert rejected == []
    row = rows.to_pylist()[0]
    assert row["activity_id"] == 31863 and row["activity_value"] == -1500.0
    assert row["molecule_max_phase"] == 0.5 and row["molecule_name"] == 'N,N-"DIMETHYL"'


def test_empty_optional_fields_become_null():
    rows, rejected = _one(molecule_name="", molecule_max_phase="", activity_value="",
                          activity_relation="", molecule_inchi_key="")
    assert rejected == []
    row = rows.to_pylist()[0]
    assert row["molecule_name"] is None and row["activity_value"] is None
    assert row["molecule_max_phase"] is None


@pytest.mark.parametrize("changes, reason", [
    ({"activity_id": ""}, "activity_id is empty"),
    ({"activity_id": "12a"}, "activity_id is not a whole number"),
    ({"molecule_id": "-3"}, "molecule_id is not a whole number"),
    ({"target_id": "1" * 19}, "target_id is not a whole number"),
    ({"target_name": ""}, "target_name is empty"),
    ({"activity_type": ""}, "activity_type is empty"),
    ({"activity_value": "NaN"}, "activity_value is not a finite number"),
    ({"activity_value": "inf"}, "activity_value is not a finite number"),
    ({"activity_value": "1e999"}, "activity_value is not a finite number"),
    ({"molecule_max_phase": "5"}, "molecule_max_phase is not one of"),
    ({"activity_relation": "=="}, "activity_relation is not one of"),
    ({"molecule_inchi_key": "SHORT"}, "molecule_inchi_key is not a 27-character InChIKey"),
    ({"molecule_structure": "C" * 1001}, "molecule_structure is longer than 1000 bytes"),
    ({"activity_type": "T" * 251}, "activity_type is longer than 250 characters"),
    ({"activity_units": "u" * 101}, "activity_units is longer than 100 characters"),
    ({"activity_relation": "<" * 51}, "activity_relation is longer than 50 characters"),
    ({"molecule_name": "N" * 256}, "molecule_name is longer than 255 characters"),
    ({"target_name": "t" * 201}, "target_name is longer than 200 characters"),
    ({"target_organism": "o" * 151}, "target_organism is longer than 150 characters"),
    ({"target_name": "a\x00b"}, "target_name contains a NUL byte"),
])
def test_bad_rows_are_rejected_with_a_reason(changes, reason):
    rows, rejected = _one(**changes)
    assert rows.num_rows == 0
    assert len(rejected) == 1 and rejected[0].line == 2
    assert reason in rejected[0].reason
    assert reason_class(rejected[0].reason) != "other"  # a metrics label of its own


def test_one_bad_row_does_not_stop_the_others():
    rows, rejected = validate(_chunk(GOOD, {**GOOD, "activity_id": "x"}, GOOD),
                              max_field_bytes=1000)
    assert rows.column(LINE).to_pylist() == [2, 4]
    assert [r.line for r in rejected] == [3]


def test_formula_like_names_are_kept_as_data():
    rows, rejected = _one(molecule_name="=cmd|' /C calc'!A0")
    assert rejected == [] and rows.column("molecule_name")[0].as_py().startswith("=cmd")


@pytest.mark.parametrize("relation", ["=", "<", ">", "<=", ">=", "~", "<<", ">>", ""])
def test_every_relation_chembl_documents_is_accepted(relation):
    rows, rejected = _one(activity_relation=relation)
    assert rejected == [] and rows.column("activity_relation")[0].as_py() == (relation or None)


@pytest.mark.parametrize("phase, value", [("4", 4.0), ("4.0", 4.0), ("0.5", 0.5), ("-1", -1.0),
                                          ("3", 3.0), ("2.0", 2.0), ("0", 0.0), ("", None)])
def test_max_phase_takes_the_forms_chembl_exports(phase, value):
    rows, rejected = _one(molecule_max_phase=phase)
    assert rejected == [] and rows.column("molecule_max_phase")[0].as_py() == value


def test_widths_count_characters_not_bytes():
    """PostgreSQL's varchar(n) counts characters: a 250-character type of multi-byte
    characters fits."""
    rows, rejected = validate(_chunk({**GOOD, "activity_type": "µ" * 250}),
                              max_field_bytes=1000)
    assert rejected == [] and rows.num_rows == 1
    _, rejected = validate(_chunk({**GOOD, "activity_type": "µ" * 251}), max_field_bytes=1000)
    assert "activity_type is longer than 250 characters" in rejected[0].reason


def test_a_chunk_without_optional_columns_keeps_them_absent():
    required = ["activity_id", "activity_type", "molecule_id", "target_id", "target_name"]
    chunk = pa.table({LINE: pa.array([2], pa.int64()),
                      **{c: pa.array([GOOD[c]], pa.string()) for c in required}})
    rows, rejected = validate(chunk, max_field_bytes=1000)
    assert rejected == [] and rows.column_names == [LINE, *required]
