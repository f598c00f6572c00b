import gzip

import numpy as np
import pytest
from molstream import read
from molstream.contract import COLUMN_NAMES, ContractError
from molstream.read import ReadError, convert, scanning, source
from molstream.sample import LEGACY_COLUMNS

HEADER = ",".join(LEGACY_COLUMNS)  # the order these rows are written in
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
    assert [r["_line"] for r in rows] == [2, 3, 5]  # as an editor counts: row 2 spans two
    assert c.rejections == []


def test_line_numbers_count_the_line_breaks_held_in_values(tmp_path):
    """Rows and rejections are numbered as an editor numbers lines, whatever column (an extra
    one included) or refused row holds the line breaks before them."""
    header = HEADER + ",comment"
    p = tmp_path / "a.csv"
    p.write_text("\n".join([
        header,
        ROW.format(id=1) + ',"a\r\nb\nc"',     # lines 2-4, breaks in an extra column only
        '2,7,"x\ny",1',                          # lines 5-6: too few fields, refused
        ROW.format(id=3) + ",",                   # line 7
        "4,7",                                    # line 8: refused
        '5,7,"three\nline\nname",,,,11,ABL1,,Ki,,,,',  # lines 9-11
        "6,7,caf\udce9,,,,11,ABL1,,Ki,,,,",       # line 12: not UTF-8
        ROW.format(id=7) + ",",                   # line 13
    ]) + "\n", errors="surrogateescape")
    c, rows = _rows(p)
    assert [(r["activity_id"], r["_line"]) for r in rows] == [("1", 2), ("3", 7), ("5", 9),
                                                                ("7", 13)]
    assert [(r.line, r.reason) for r in c.rejections] == [
        (5, "expected 14 fields, found 4"), (8, "expected 14 fields, found 2"),
        (12, "the row is not valid UTF-8")]


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_empty_lines_count_as_lines(tmp_path, eol):
    p = tmp_path / "a.csv"
    p.write_bytes(eol.join([
        HEADER, ROW.format(id=1), "", "",           # lines 2, 3-4 empty
        '2,7,"x\ny",1', "",                         # lines 5-6 refused, 7 empty
        ROW.format(id=3), "", "4,7",                # lines 8, 9 empty, 10 refused (no final
    ]).encode())                                    # line break)
    c, rows = _rows(p)
    assert [(r["activity_id"], r["_line"]) for r in rows] == [("1", 2), ("3", 8)]
    assert [r.line for r in c.rejections] == [5, 10]


def test_empty_lines_inside_values_leave_empty_lines_uncounted(tmp_path):
    """An empty line inside a quoted value looks like one between rows: when both occur, which
    is which is not known, and the empty lines between rows are left out (with a warning)."""
    p = tmp_path / "a.csv"
    p.write_text("\n".join([HEADER, '1,7,"x\n\ny",,,,11,ABL1,,Ki,,,', "", "2,7"]) + "\n")
    c, rows = _rows(p)
    assert [r["_line"] for r in rows] == [2]
    assert [r.line for r in c.rejections] == [5]  # an editor says 6
    assert any("leave the empty lines out" in w for w in c.warnings)


def test_an_unterminated_quote_is_placed_on_the_editors_line(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text(HEADER + "\n" + '1,7,"two\nlines",,,,11,ABL1,,Ki,,,\n' +
                 '2,7,"never closed,,,,11,ABL1,,Ki,,,\n3,7,x,,,,11,ABL1,,Ki,,,\n')
    with pytest.raises(ReadError, match="opened on line 4 is never closed"):
        _rows(p)


def test_line_map_adds_the_breaks_of_earlier_records_only():
    m = read.LineMap()
    assert m.line(7) == 7
    m.add(np.array([3, 4, 9]), np.array([2, 0, 1]))
    m.add(np.array([5]), np.array([4]))  # in any order
    assert m.lines(np.array([2, 3, 4, 5, 6, 9, 10])).tolist() == [2, 3, 6, 7, 12, 15, 17]
    assert m.line(-1) == -1  # Arrow's "unknown"


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
    # An absent column stays absent (the worker leaves it alone); an empty one is empty.
    assert rows[0]["activity_id"] == "5" and "molecule_name" not in rows[0]
    assert rows[0]["target_organism"] == ""
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
    p.write_text(HEADER + "\n" + ROW.format(id=1) + '\n2,7,"never closed,,,,11,ABL1,,Ki,,,\n'
                 + "3,7,,,,,11,ABL1,,Ki,,,\n")
    # The quote swallows the rest of the file (row 3 too): rejecting it as one short row would
    # lose every row after it without a word, so the file fails, naming where the quote opened.
    with pytest.raises(ReadError, match="quoted field opened on line 3 is never closed"):
        _rows(p)
    assert not list((tmp_path / "h5").glob("*.hdf5"))


def test_gzip_is_inflated_with_a_cap(tmp_path):
    p = tmp_path / "a.csv.gz"
    with gzip.open(p, "wt") as f:
        f.write(HEADER + "\n" + "".join(ROW.format(id=i) + "\n" for i in range(1, 2001)))
    with convert(p, tmp_path / "h5", max_decompressed_bytes=1_000_000) as c:
        assert c.rows == 2000
        assert [r["activity_id"] for ch in c.chunks(1500) for r in ch.to_pylist()][-1] == "2000"
    with pytest.raises(ReadError, match="gzip bomb"):
        convert(p, tmp_path / "failed", max_decompressed_bytes=100)  # in the header already
    with pytest.raises(ReadError, match="inflates to more than 50000 bytes"):
        convert(p, tmp_path / "failed", max_decompressed_bytes=50_000)  # in the rows
    assert not (tmp_path / "failed").exists()  # refused before anything was converted
    # A bomb is refused as one, even when what it holds fails the file some other way first.
    bomb = tmp_path / "bomb.csv.gz"
    bomb.write_bytes(gzip.compress(b"activity_id\n" + b"\0" * 3_000_000))
    with pytest.raises(ReadError, match="gzip bomb"):
        convert(bomb, tmp_path / "h5", max_decompressed_bytes=2_000_000)
    with pytest.raises(ContractError, match="is missing"):
        convert(bomb, tmp_path / "h5", max_decompressed_bytes=4_000_000)


def test_a_truncated_gzip_file_fails_with_a_clear_error(tmp_path):
    whole = gzip.compress((HEADER + "\n" + ROW.format(id=1) + "\n").encode() * 50_000)
    p = tmp_path / "cut.csv.gz"
    p.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ReadError, match="cut.csv.gz is not a valid gzip file"):
        convert(p, tmp_path / "h5")


def test_a_row_larger_than_a_block_is_read_with_larger_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(scanning, "BLOCK_BYTES", 1 << 16)
    monkeypatch.setattr(source, "MAX_ROW_BYTES", 1 << 20)  # read by scanning too, at call time
    p = tmp_path / "a.csv"
    big = ROW.format(id=2).replace("CCO", "C" * 300_000)
    p.write_text("\n".join([HEADER, ROW.format(id=1), big, ROW.format(id=3)]) + "\n")
    c, rows = _rows(p)
    assert [r["activity_id"] for r in rows] == ["1", "2", "3"]
    assert len(rows[1]["molecule_structure"]) == 300_000
    p.write_text("\n".join([HEADER, big.replace("C" * 300_000, "C" * 3_000_000)]) + "\n")
    with pytest.raises(ReadError, match="a row is larger than 1048576 bytes"):
        convert(p, tmp_path / "h5")


@pytest.mark.parametrize("where", ["last", "first of a later block", "every block's last"])
def test_rows_arrow_skips_ahead_of_the_batch_it_returns(tmp_path, monkeypatch, where):
    """Arrow parses ahead: a row of a later block with too few fields reaches the invalid-row
    handler before the batch in front of it is returned. Every row keeps its own line (the last
    row of a file once crashed the conversion: one line number too many)."""
    monkeypatch.setattr(scanning, "BLOCK_BYTES", 1 << 14)  # ~16 kB blocks: many of them
    n = 2_000
    lines = [ROW.format(id=i) for i in range(1, n + 1)]
    bad = {"last": [n], "first of a later block": [300],
           "every block's last": list(range(150, n + 1, 150))}[where]
    for i in bad:
        lines[i - 1] = "1,2,3"
    p = tmp_path / "a.csv"
    p.write_text("\n".join([HEADER, *lines]) + "\n")
    c, rows = _rows(p)
    kept = [i for i in range(1, n + 1) if i not in bad]
    assert [r["activity_id"] for r in rows] == [str(i) for i in kept]
    assert [r["_line"] for r in rows] == [i + 1 for i in kept]
    assert [r.line for r in c.rejections] == [i + 1 for i in bad]
