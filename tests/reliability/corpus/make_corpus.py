"""Writes the bad-input corpus: `python tests/reliability/corpus/make_corpus.py [DIR]`.

The small files are committed next to this script (rerun it to regenerate them byte for byte);
the two large ones (a 10 MB field, a gzip bomb) are written at test time only, by `large()`.
Each file's expected outcome is in expected.json. Line numbers there count the header as
line 1.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

COLUMNS = ("activity_id", "molecule_id", "molecule_name", "molecule_max_phase",
           "molecule_structure", "molecule_inchi_key", "target_id", "target_name",
           "target_organism", "activity_type", "activity_units", "activity_value",
           "activity_relation")
HEADER = ",".join(COLUMNS)


def row(activity_id="1", molecule_id="10", name="ASPIRIN", phase="4", structure="CC(=O)O",
        inchi="", target_id="100", target="COX-1", organism="Homo sapiens", type_="IC50",
        units="nM", value="12.5", relation="=") -> str:
    return ",".join((activity_id, molecule_id, name, phase, structure, inchi, target_id, target,
                     organism, type_, units, value, relation))


def lines(*rows: str, header: str = HEADER, eol: str = "\n") -> bytes:
    return (eol.join((header, *rows)) + eol).encode()


SMALL: dict[str, bytes] = {
    "empty.csv": b"",
    "blank_lines.csv": b"\n\n\n",
    "header_only.csv": lines(),
    "missing_column.csv": lines(
        "1,10,ASPIRIN,4,CC,,COX-1,Homo sapiens,IC50,nM,12.5,=",
        header=",".join(c for c in COLUMNS if c != "target_id")),
    "column_twice.csv": lines(row() + ",13", header=HEADER + ",activity_value"),
    "semicolon_delimited.csv": lines(row().replace(",", ";"), header=HEADER.replace(",", ";")),
    "tab_delimited.csv": lines(row().replace(",", "\t"), header=HEADER.replace(",", "\t")),
    # Line 3 opens a quote that never closes: without a closing quote, lines 4 and 5 would be
    # swallowed into one field of line 3.
    "unterminated_quote.csv": lines(row("1"), row("2", name='"ASPIRIN, unterminated'),
                                    row("3"), row("4")),
    # Line 3 opens a quote that line 5 closes: lines 3 to 5 would read as one row.
    "misplaced_quote.csv": lines(row("1"), row("2", name='"ASPIRIN, not closed'), row("3"),
                                 row("4", name='"ASPIRIN"'), row("5")),
    # Values holding line breaks move every later line (2-3, then 7-9): rejections name the
    # line an editor shows, not the CSV record's number.
    "line_breaks.csv": lines(row("1", name='"ASPIRIN\nacetylsalicylic acid"'),
                             "2,10,ASPIRIN,4", row("3"), row("1"),
                             row("4", name='"ASPIRIN, not closed'), row("5"),
                             row("6", name='"ASPIRIN"'), row("7", value="x"), row("8")),
    "not_utf8.csv": lines(row("1"), row("2"), row("3"), row("4")).replace(
        b"2,10,ASPIRIN", b"2,10,ASP\xc9RINE").replace(b"4,10,ASPIRIN,4,CC(=O)O,,100,COX-1",
                                                       b"4,10,ASPIRIN,4,CC(=O)O,,100,COX\xff\xfe"),
    "not_utf8_header.csv": lines(row()).replace(b"molecule_name", b"mol\xe9cule_name"),
    "nul_byte.csv": lines(row("1"), row("2", name="ASP\x00IRIN"), row("3")),
    "field_count.csv": lines(row("1"), "2,10,ASPIRIN,4,CC,,100,COX-1", row("3") + ",extra",
                             row("4") + ",,", "5", row("6")),
    "non_numeric_ids.csv": lines(
        row("1"), row("x2"), row("3.0"), row("-4"), row("1e3"), row("99999999999999999999"),
        row(" 7"), row("8", molecule_id="abc"), row("9", target_id="T100"),
        row("10", target_id=""), row("", molecule_id="11"), row("12")),
    "nan_inf.csv": lines(
        row("1"), row("2", value="NaN"), row("3", value="nan"), row("4", value="inf"),
        row("5", value="-Infinity"), row("6", value="1e999"), row("7", phase="NaN"),
        row("8", phase="inf"), row("9", value="-1e308"), row("10", value="1.5e-300")),
    "duplicate_id.csv": lines(row("1"), row("2"), row("1", value="99"), row("3"),
                              row("2", value="98"), row("2", value="97")),
    "formula.csv": lines(
        row("1", name="\"=cmd|' /C calc'!A0\""),
        row("2", molecule_id="11", name='"=HYPERLINK(""http://evil.example/"",""x"")"',
            target_id="101", target="+SUM(1;2)"),
        row("3", molecule_id="12", name="@SUM(A1:A9)", target_id="102", target="-2+3+cmd|x"),
        row("4", molecule_id="13", name="\t=1+1", target_id="103", organism="=1+1",
            type_="=IC50")),
    "crlf.csv": lines(row("1"), row("2", name='"N,N-DIMETHYL ""X"""'), row("3"), eol="\r\n"),
    "utf8_bom.csv": b"\xef\xbb\xbf" + lines(row("1"), row("2", name="ÉTHANOL β-δ")),
}


def large(out: Path) -> dict[str, Path]:
    """The large inputs, written at test time: a 10 MB field, and a gzip bomb (10,240 gzip
    members of 1 MiB of zeros each: 10 GiB inflated from about 10 MB)."""
    out.mkdir(parents=True, exist_ok=True)
    huge = out / "huge_field.csv"
    huge.write_bytes(lines(row("1"), row("2", structure="C" * 10_000_000), row("3")))
    bomb = out / "gzip_bomb.csv.gz"
    member = gzip.compress(b"\0" * (1 << 20), compresslevel=9)
    with open(bomb, "wb") as f:
        f.write(gzip.compress(lines()))
        for _ in range(10_240):
            f.write(member)
    return {huge.name: huge, bomb.name: bomb}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, data in SMALL.items():
        (out / name).write_bytes(data)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
