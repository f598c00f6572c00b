import gzip

import pytest
from molstream.contract import COLUMN_NAMES, ContractError
from molstream.read import ReadError, convert, decompress_if_gzip

HEADER = ",".join(COLUMN_NAMES)
ROW = '{id},7,"A, ""quoted"" name",1,CCO,,11,ABL1,Homo sapiens,IC50,nM,1.5,='


def _rows(path):
    with convert(path, path.parent / "h5") as c:
        return c, [r for chunk in c.chunks(1000) for r in chunk.to_pylist()]


def test_fields_with_commas_quotes_and_newlines(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text(HEADER + "\n" + ROW.format(id=1) + "\n" +
                 '2,7,"two\nlines",,,,11,ABL1,,Ki,,,\n' + ROW.format(id=3) + "\n")
    c, rows = _rows(p)
    assert [r["activity_id"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["molecule_name"] == 'A, "quoted" name'
    assert rows[1]["molecule_name"] == "two\nlines"
    assert [r["_line"] for r in rows] == [2, 3, 4]
    assert c.rejections == []


def test_rows_with_wrong_field_counts_are_rejected_with_their_line(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("\n".join([HEADER, ROW.format(id=1), ROW.format(id=2) + ",extra",
                            "3,7", ROW.format(id=4)]) + "\n")
    c, rows = _rows(p)
    assert [r["activity_id"] for r in rows] == ["1", "4"]
    assert [r["_line"] for r in rows] == [2, 5]
    assert [(r.line, r.reason) for r in c.rejections] == [
        (3, "expected 13 fields, found 14"), (4, "expected 13 fields, found 2")]


def test_invalid_utf8_rejects_only_that_row(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes((HEADER + "\n" + ROW.format(id=1) + "\n").encode() +
                  b"2,7,caf\xe9,,,,11,ABL1,,Ki,,,\n" + (ROW.format(id=3) + "\n").encode())
    c, rows = _rows(p)
    assert [r["activity_id"] for r in rows] == ["1", "3"]
    assert [(r.line, r.reason) for r in c.rejections] == [(3, "the row is not valid UTF-8")]


def test_column_order_may_differ_and_optional_columns_may_be_absent(tmp_path):
    cols = [c for c in reversed(COLUMN_NAMES) if c != "molecule_name"] + ["extra"]
    values = {"activity_id": "5", "molecule_id": "6", "target_id": "7", "target_name": "T",
              "activity_type": "Ki", "extra": "zzz"}
    p = tmp_path / "a.csv"
    p.write_text(",".join(cols) + "\n" + ",".join(values.get(c, "") for c in cols) + "\n")
    c, rows = _rows(p)
    assert rows[0]["activity_id"] == "5" and rows[0]["molecule_name"] == ""
    assert "extra" not in rows[0]
    assert any("extra" in w for w in c.warnings) and any("molecule_name" in w for w in c.warnings)


def test_empty_file_and_header_only(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ReadError, match="empty"):
        convert(empty, tmp_path / "h5")
    header_only = tmp_path / "h.csv"
    header_only.write_text(HEADER + "\n")
    c, rows = _rows(header_only)
    assert c.rows == 0 and rows == []


def test_missing_required_column_names_it(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text(",".join(c for c in COLUMN_NAMES if c != "activity_type") + "\n")
    with pytest.raises(ContractError, match="'activity_type' is missing"):
        convert(p, tmp_path / "h5")


def test_unterminated_quote_fails_the_file(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text(HEADER + "\n" + ROW.format(id=1) + '\n2,7,"never closed,,,,11,ABL1,,Ki,,,\n')
    # The quote swallows the rest of the file: the parser sees one short row and says where.
    c, rows = _rows(p)
    assert [r["activity_id"] for r in rows] == ["1"]
    assert [r.line for r in c.rejections] == [3]


def test_gzip_is_inflated_with_a_cap(tmp_path):
    p = tmp_path / "a.csv.gz"
    with gzip.open(p, "wt") as f:
        f.write(HEADER + "\n" + ROW.format(id=1) + "\n")
    out = decompress_if_gzip(p, tmp_path / "a.csv", max_bytes=10_000)
    assert out.read_text().startswith("activity_id")
    with pytest.raises(ReadError, match="gzip bomb"):
        decompress_if_gzip(p, tmp_path / "b.csv", max_bytes=100)
    plain = tmp_path / "plain.csv"
    plain.write_text("x")
    assert decompress_if_gzip(plain, tmp_path / "c.csv", max_bytes=10) == plain
