"""Dialects: the delimiter (detected from the header line, or given), quoting, null tokens, a
byte-order mark, CRLF; header names matched without regard to case, through a map or through
ChEMBL's own names; a header that does not fit fails naming what was found and what was
expected."""

import pytest
from molstream.contract import ContractError, validate
from molstream.read import Format, convert, read_header
from molstream.read.dialect import DETECT, detect
from molstream.sample import LEGACY_COLUMNS

ROW = ["1", "7", 'A, "quoted"; name|x', "1", "CCO", "", "11", "ABL1", "Homo sapiens", "IC50",
       "nM", "1.5", "="]  # in LEGACY_COLUMNS' order


def _quote(field: str, delimiter: str, always: bool) -> str:
    if always or any(c in field for c in f'"{delimiter}\r\n'):
        return '"' + field.replace('"', '""') + '"'
    return field


def _file(tmp_path, rows, *, delimiter=",", always=False, eol="\n", bom=False,
          header=LEGACY_COLUMNS):
    lines = [delimiter.join(_quote(f, delimiter, always) for f in r) for r in [header, *rows]]
    p = tmp_path / "a.csv"
    p.write_bytes((("\ufeff" if bom else "") + eol.join(lines) + eol).encode())
    return p


def _rows(path, fmt=DETECT):
    with convert(path, path.parent / "h5", fmt=fmt) as c:
        return c, [r for ch in c.chunks(1000) for r in ch.to_pylist()]


@pytest.mark.parametrize("delimiter", [",", "\t", ";", "|"])
@pytest.mark.parametrize(("always", "eol", "bom"), [(False, "\n", False), (True, "\r\n", True)])
def test_each_dialect_is_detected_and_read(tmp_path, delimiter, always, eol, bom):
    rows = [ROW, [str(2), *ROW[1:5], "", *ROW[6:]]]
    p = _file(tmp_path, rows, delimiter=delimiter, always=always, eol=eol, bom=bom)
    header = read_header(p)
    assert header.fmt.delimiter == delimiter
    c, got = _rows(p)
    assert c.rejections == [] and c.warnings == []
    assert [r["activity_id"] for r in got] == ["1", "2"]
    assert got[0]["molecule_name"] == 'A, "quoted"; name|x'
    assert got[0]["molecule_inchi_key"] == ""  # `""` quoted is an empty field too
    assert [r["_line"] for r in got] == [2, 3]


def test_detection_prefers_the_split_into_known_names():
    known = {"activity_id", "activity_type", "a;b"}.__contains__
    assert detect("activity_id;activity_type,x", known) == ";"
    assert detect("x,y", known) == ","  # nothing known: the most fields, comma first
    assert detect("x", known) == ","
    assert detect("x|y|z,w", known) == "|"


def test_a_given_delimiter_that_does_not_fit_fails_at_the_header(tmp_path):
    p = _file(tmp_path, [ROW], delimiter="\t")
    with pytest.raises(ContractError) as e:
        convert(p, tmp_path / "h5", fmt=Format(delimiter=","))
    message = str(e.value)
    # (a cell with tabs in it is no column name: counted, not shown)
    assert message.startswith("required column 'activity_id', 'activity_type', 'molecule_id', "
                              "'target_id', 'target_name' is missing: the header has 1 "
                              "column (not shown: not column names) when split on ','; it "
                              "splits into 13 columns on tab, the required ones among them: "
                              "the file looks tab-separated: set spec.format.delimiter")
    assert "activity_id\t" not in message
    assert "expected the columns activity_id, activity_type, molecule_id, target_id, " \
           "target_name" in message
    assert not (tmp_path / "h5").exists()


def test_a_file_without_activity_id_is_refused_saying_why(tmp_path):
    header = ["Molecule ChEMBL ID", "Standard Type", "Standard Value"]
    p = _file(tmp_path, [["CHEMBL1", "IC50", "1"]], delimiter=";", always=True, header=header)
    with pytest.raises(ContractError, match=r"the header has 3 columns .* when split on ';'.*"
                                            "activity_id is an activity's natural key"):
        read_header(p)


@pytest.mark.parametrize("first_line", [
    "root:x:0:0:SECRET_TOKEN=hunter2-abcdef:/root:/bin/bash",
    "-NOAUTH Authentication required. SECRET_TOKEN",
    '{"access_token": "SECRET_TOKEN", "expires_in": 3600}',
    "activity_id,SECRET_TOKEN=hunter2",  # one cell that is no column name hides them all
])
def test_a_header_that_is_no_header_is_counted_never_shown(tmp_path, first_line):
    """Whatever a download's first line is (a password file, a service's answer), the message
    (the IngestRequest's status) says how many columns, not what they hold."""
    p = tmp_path / "a.csv"
    p.write_text(first_line + "\nsecond:line\n")
    with pytest.raises(ContractError) as e:
        read_header(p)
    message = str(e.value)
    assert "SECRET_TOKEN" not in message and "hunter2" not in message and "root" not in message
    assert "(not shown: not column names) when split on" in message
    assert message.startswith("required column ")
    with pytest.raises(ContractError) as e:  # the column map's error too
        read_header(p, fmt=Format(columns=(("nope", "activity_id"),)))
    assert "SECRET_TOKEN" not in str(e.value)
    assert "(the header: " in str(e.value) and "not shown: not column names)" in str(e.value)


def test_the_real_files_with_a_wrong_delimiter_still_say_what_would_do():
    from pathlib import Path
    real = Path(__file__).parents[1] / "data" / "chembl-real"
    with pytest.raises(ContractError) as e:
        read_header(real / "activities.csv.gz", fmt=Format(delimiter="\t"))
    assert ("the header has 1 column (not shown: not column names) when split on tab; it "
            "splits into 13 columns on ',', the required ones among them: the file looks "
            "comma-separated: set spec.format.delimiter (--delimiter)") in str(e.value)
    with pytest.raises(ContractError) as e:  # ChEMBL's web export: no activity_id at all
        read_header(real / "webui_export_CHEMBL1978.csv.gz")
    assert "the header has 47 columns (not shown: not column names) when split on ';'" in str(
        e.value)  # ('#RO5 Violations' is not a name we show)
    assert "activity_id is an activity's natural key" in str(e.value)


def test_header_names_are_shown_when_they_look_like_names(tmp_path):
    header = ["Molecule ChEMBL ID", "standard_type", "pchembl.value", "x-1", ""]
    with pytest.raises(ContractError) as e:
        read_header(_file(tmp_path, [["1"] * 5], header=header, delimiter=";"))
    assert ("the header has 5 columns 'Molecule ChEMBL ID', 'standard_type', 'pchembl.value', "
            "'x-1', '' when split on ';'") in str(e.value)
    many = [f"c{i}" for i in range(30)]
    with pytest.raises(ContractError) as e:
        read_header(_file(tmp_path, [["1"] * 30], header=many))
    assert "the header has 30 columns 'c0', 'c1', " in str(e.value)
    assert "'c19', … (10 more) when split on ','" in str(e.value)


def test_null_tokens_are_nulls_and_a_required_one_rejects_its_row(tmp_path):
    rows = [["1", "7", "NULL", "None", '\\N', "", "11", "ABL1", "NA", "IC50", "nM", "1.5", "NULL"],
            ["2", "7", "N", "4", "C", "", "11", "NULL", "Homo sapiens", "IC50", "None", "NA", "="],
            ["3", "7", "NULLS", "4", "C", "", "11", "T", "", "Ki", "uM", "2", "="]]
    p = _file(tmp_path, rows, delimiter="\t", always=True)
    # Without tokens, they are values (and an unknown relation rejects row 1, as before).
    _, got = _rows(p)
    assert got[0]["molecule_name"] == "NULL"
    fmt = Format(null_tokens=("NULL", "None", "NA", "\\N"))
    c, got = _rows(p, fmt)
    assert got[0]["molecule_name"] == got[0]["molecule_max_phase"] == ""
    assert got[0]["molecule_structure"] == got[0]["target_organism"] == ""
    assert got[2]["molecule_name"] == "NULLS"  # a token is a whole field
    valid, rejected = validate(c.chunks(1000).__next__(), max_field_bytes=1000,
                               delimiter="\t")
    assert valid.column("activity_id").to_pylist() == [1, 3]
    assert valid.column("activity_relation").to_pylist() == [None, "="]
    assert [(r.line, r.reason) for r in rejected] == [(3, "target_name is empty")]


def test_header_names_match_without_regard_to_case(tmp_path):
    header = [n.upper() if i % 2 else n.title() for i, n in enumerate(LEGACY_COLUMNS)]
    c, got = _rows(_file(tmp_path, [ROW], header=header))
    assert got[0]["activity_id"] == "1" and got[0]["target_name"] == "ABL1"
    assert c.warnings == []


CHEMBL_HEADER = ["activity_id", "molregno", "compound_pref_name", "max_phase",
                 "canonical_smiles", "standard_inchi_key", "tid", "target_pref_name", "organism",
                 "standard_type", "standard_units", "standard_value", "standard_relation"]


def test_chembl_names_map_through_the_built_in_map(tmp_path):
    header = read_header(_file(tmp_path, [ROW], header=CHEMBL_HEADER))
    assert dict(zip(CHEMBL_HEADER, header.names, strict=True)) == {
        "activity_id": "activity_id", "molregno": "molecule_id",
        "compound_pref_name": "_unmapped_2", "max_phase": "molecule_max_phase",
        "canonical_smiles": "molecule_structure", "standard_inchi_key": "molecule_inchi_key",
        "tid": "target_id", "target_pref_name": "target_name", "organism": "target_organism",
        "standard_type": "activity_type", "standard_units": "activity_units",
        "standard_value": "activity_value", "standard_relation": "activity_relation"}
    assert any("compound_pref_name" in w for w in header.warnings)
    # ... and a map names what the built-in one cannot.
    c, got = _rows(_file(tmp_path, [ROW], header=CHEMBL_HEADER),
                   Format(columns=(("Compound_Pref_Name", "molecule_name"),)))
    assert got[0]["molecule_name"] == ROW[2] and got[0]["activity_type"] == "IC50"


def test_pref_name_is_ambiguous_unless_mapped(tmp_path):
    header = [*CHEMBL_HEADER[:7], "pref_name", *CHEMBL_HEADER[8:]]
    p = _file(tmp_path, [ROW], header=header)
    with pytest.raises(ContractError, match=r"'pref_name' is ChEMBL's name for both "
                                            r"molecule_name and target_name: say which with "
                                            r"spec.columns \(--column pref_name=molecule_name"):
        read_header(p)
    _, got = _rows(p, Format(columns=(("pref_name", "target_name"),)))
    assert got[0]["target_name"] == "ABL1"


def test_the_map_wins_over_names_and_names_over_chembls(tmp_path):
    header = [*LEGACY_COLUMNS, "standard_type", "Custom Type"]
    p = _file(tmp_path, [[*ROW, "Ki", "EC50"]], header=header)
    c, got = _rows(p)
    assert got[0]["activity_type"] == "IC50"
    assert any("'standard_type' ignored: 'activity_type' gives activity_type" in w
               for w in c.warnings)
    _, got = _rows(p, Format(columns=(("custom type", "activity_type"),)))
    assert got[0]["activity_type"] == "EC50"


@pytest.mark.parametrize(("header", "fmt", "message"), [
    ([*LEGACY_COLUMNS, "activity_id"], Format(), "column 'activity_id' appears more than once"),
    ([*LEGACY_COLUMNS, "Activity_ID"], Format(),
     "columns 'activity_id' and 'Activity_ID' both give activity_id"),
    (LEGACY_COLUMNS, Format(columns=(("nope", "activity_id"),)),
     "the column map names 'nope', which the header does not have"),
    (LEGACY_COLUMNS, Format(columns=(("activity_id", "activity"),)),
     "the column map gives 'activity', not a column of the contract"),
    ([c for c in LEGACY_COLUMNS if c != "target_id"], Format(),
     "required column 'target_id' is missing"),
])
def test_headers_that_do_not_fit_fail_naming_why(tmp_path, header, fmt, message):
    row = ROW[:len(header)] + ["x"] * (len(header) - len(ROW))
    with pytest.raises(ContractError, match=message):
        read_header(_file(tmp_path, [row], header=header), fmt=fmt)


def test_header_warnings(tmp_path):
    header = read_header(_file(tmp_path, [[*ROW, "x"]], header=[*LEGACY_COLUMNS, "extra"]))
    assert header.warnings == ["ignoring column(s) not in the contract: extra"]
    header = read_header(_file(tmp_path, [ROW[:2] + ROW[3:]],
                               header=[c for c in LEGACY_COLUMNS if c != "molecule_name"]))
    assert any("molecule_name" in w for w in header.warnings)


def test_the_format_from_the_environment_and_the_command_line(monkeypatch):
    from click.testing import CliRunner
    from molstream import cli
    from molstream.config import Settings
    from molstream.fetcher import input_format

    monkeypatch.setenv("MOLSTREAM_DELIMITER", "tab")
    monkeypatch.setenv("MOLSTREAM_NULL_TOKENS", "NULL, None,NA,\\N")
    monkeypatch.setenv("MOLSTREAM_ZIP_MEMBER", "chembl/activities.csv")
    monkeypatch.setenv("MOLSTREAM_COLUMNS", "pref_name=molecule_name,Target Name=target_name")
    fmt = input_format(Settings.from_env())
    assert fmt == Format(delimiter="\t", null_tokens=("NULL", "None", "NA", "\\N"),
                         member="chembl/activities.csv",
                         columns=(("pref_name", "molecule_name"),
                                  ("Target Name", "target_name")))
    monkeypatch.setenv("MOLSTREAM_DELIMITER", ":")
    with pytest.raises(ValueError, match="the delimiter must be one of"):
        Settings.from_env()
    for option, needle in (("--delimiter=:", "the delimiter must be one of"),
                           ("--column=pref_name", "a column map entry is SOURCE=COLUMN"),
                           ("--column=pref_name=name", "'name' is not a column of the contract")):
        result = CliRunner().invoke(cli.main, ["fetch", "--url", "file:///a.csv", option])
        assert result.exit_code == 2 and needle in result.output, result.output


def test_quotes_left_open_are_found_whatever_the_delimiter(tmp_path):
    from molstream.read import ReadError

    def row(i, name="N"):
        return [str(i), *ROW[1:2], name, *ROW[3:]]

    body = "\n".join("\t".join(r) for r in [LEGACY_COLUMNS, row(1), row(2, '"open'), row(3)])
    p = tmp_path / "a.tsv"
    p.write_text(body + "\n")
    with pytest.raises(ReadError, match="the quoted field opened on line 3 is never closed"):
        convert(p, tmp_path / "h5")
    # Closed two lines later: one "row" swallowed the next, which the contract rejects.
    rows = [LEGACY_COLUMNS, row(1), row(2, '"open'), row(3), row(4, 'closed"'), row(5)]
    p.write_text("\n".join("\t".join(r) for r in rows) + "\n")
    c, got = _rows(p)
    valid, rejected = validate(next(c.chunks(1000)), max_field_bytes=10**6, delimiter="\t")
    assert valid.column("activity_id").to_pylist() == [1, 5]
    assert [(r.line, r.reason.split(" (")[0]) for r in rejected] == [
        (3, "molecule_name holds lines that read like rows of their own")]
