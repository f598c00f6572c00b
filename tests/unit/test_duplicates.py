import csv
import gzip
import random
from pathlib import Path

import pyarrow as pa
from molstream.contract import LINE, validate
from molstream.fetcher import DuplicateFilter
from molstream.read import convert
from molstream.seen_ids import SeenIds


def _rows(ids, first_line):
    return pa.table({LINE: pa.array(range(first_line, first_line + len(ids)), pa.int64()),
                     "activity_id": pa.array(ids, pa.int64())})


def test_first_occurrence_wins_within_and_across_chunks():
    f = DuplicateFilter()
    kept, rejected = f.filter(_rows([5, 3, 5, 9, 3], 2))
    assert kept.column("activity_id").to_pylist() == [5, 3, 9]
    assert [(r.line, r.reason) for r in rejected] == [
        (4, "duplicate activity_id 5 (first seen on line 2)"),
        (6, "duplicate activity_id 3 (first seen on line 3)")]
    kept, rejected = f.filter(_rows([1, 9, 2, 5], 7))
    assert kept.column("activity_id").to_pylist() == [1, 2]
    assert [(r.line, r.reason) for r in rejected] == [
        (8, "duplicate activity_id 9 (first seen on line 5)"),
        (10, "duplicate activity_id 5 (first seen on line 2)")]


def test_many_chunks_in_any_order_match_a_plain_set(monkeypatch):
    """Ids in order (no look-up), then shuffled ones with many repeats (the lines on disk
    merged by id, in slices of 256, and read back by pages of 8, 4 at most at once): the same
    rows kept and the same first lines named as a set of seen ids gives."""
    import numpy as np

    monkeypatch.setattr(SeenIds, "SLICE_ROWS", 256)
    monkeypatch.setattr(SeenIds, "PAGE", 8)
    monkeypatch.setattr(SeenIds, "SPAN", 4)
    rng = np.random.default_rng(1)
    ids = np.concatenate([np.arange(1000), rng.integers(0, 3000, 4000)])
    f, seen, line = DuplicateFilter(), {}, 2
    for chunk in np.array_split(ids, 50):
        kept, rejected = f.filter(_rows(chunk.tolist(), line))
        expected_kept, expected_rejected = [], []
        for offset, i in enumerate(chunk.tolist()):
            if i in seen:
                expected_rejected.append((line + offset, seen[i]))
            else:
                seen[i] = line + offset
                expected_kept.append(i)
        assert kept.column("activity_id").to_pylist() == expected_kept
        assert [(r.line, int(r.reason.split("line ")[1].rstrip(")"))) for r in rejected] == \
            expected_rejected
        line += len(chunk)


# -- real rows (tests/data/chembl-real), through the reader and the contract as the fetcher --

REAL = Path(__file__).parents[1] / "data" / "chembl-real" / "activities.csv.gz"


def _real_lines():
    with gzip.open(REAL, "rt", encoding="utf-8", newline="") as f:
        text = f.read()
    header, *rows = text.split("\r\n")
    assert not rows[-1]  # the file ends with a line break; no row holds one (checked below)
    return header, rows[:-1]


def _through_fetcher(tmp_path, header, rows, chunk_rows, filter_dir=None):
    """`rows` written as a CSV, read, validated and filtered chunk by chunk as the fetcher does:
    the activity ids kept (in order) and {line: reason} of the rejected rows."""
    path = tmp_path / "rows.csv"
    path.write_text("\r\n".join([header, *rows, ""]), encoding="utf-8", newline="")
    f, kept, rejected = DuplicateFilter(filter_dir), [], {}
    with convert(path, tmp_path / "h5") as converted:
        assert not converted.rejections
        for chunk in converted.chunks(chunk_rows):
            valid, bad = validate(chunk, max_field_bytes=1 << 20)
            assert not bad
            valid, dups = f.filter(valid)
            kept.extend(valid.column("activity_id").to_pylist())
            rejected.update((r.line, r.reason) for r in dups)
    f.close()
    return kept, rejected


def _expected(rows):
    """What a plain dict of first lines gives (line 1 is the header)."""
    first, kept, rejected = {}, [], {}
    for line, row in enumerate(rows, start=2):
        i = int(next(csv.reader([row]))[0])
        if i in first:
            rejected[line] = f"duplicate activity_id {i} (first seen on line {first[i]})"
        else:
            first[i] = line
            kept.append(i)
    return kept, rejected


def test_real_rows_in_their_own_order_and_shuffled_keep_every_row(tmp_path):
    header, rows = _real_lines()
    assert len(rows) == 44_077 and all(r.count('"') % 2 == 0 for r in rows)
    random.Random(7).shuffle(shuffled := list(rows))
    for name, order in (("real", rows), ("shuffled", shuffled)):
        (tmp_path / name).mkdir()
        kept, rejected = _through_fetcher(tmp_path / name, header, order, 1000)
        assert (kept, rejected) == _expected(order)
        assert len(kept) == 44_077 and not rejected


def test_shuffled_real_rows_with_repeats_name_the_first_line(tmp_path):
    """A thousand real rows repeated (some twice more) at random places of a shuffled file."""
    header, rows = _real_lines()
    rng = random.Random(11)
    order = rows[:20_000] + rng.sample(rows[:20_000], 1000) + rng.sample(rows[:500], 300)
    rng.shuffle(order)
    kept, rejected = _through_fetcher(tmp_path, header, order, 500)
    assert (kept, rejected) == _expected(order)
    assert len(rejected) == 1300


def test_a_repeat_fifty_chunks_after_its_first_occurrence(tmp_path):
    header, rows = _real_lines()
    order = rows[:100 * 50]
    order.insert(100 * 49 + 37, rows[5])  # chunk 50 (of 100 rows) repeats line 7's row
    first_id = int(rows[5].split(",")[0])
    kept, rejected = _through_fetcher(tmp_path, header, order, 100, filter_dir=tmp_path / "s")
    assert rejected == {
        100 * 49 + 37 + 2: f"duplicate activity_id {first_id} (first seen on line 7)"}
    assert kept == [int(r.split(",")[0]) for r in rows[:100 * 50]]
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())  # closed


def test_a_repeat_within_one_chunk_and_a_triple_occurrence(tmp_path):
    header, rows = _real_lines()
    order = rows[:300]
    order.insert(40, rows[10])  # line 42 repeats line 12, both in the first chunk of 100
    order.insert(150, rows[20])  # line 152 repeats line 22 (chunk 2)...
    order.insert(280, rows[20])  # ...and line 282 once more (chunk 3)
    a, b = (int(rows[i].split(",")[0]) for i in (10, 20))
    kept, rejected = _through_fetcher(tmp_path, header, order, 100)
    assert rejected == {42: f"duplicate activity_id {a} (first seen on line 12)",
                        152: f"duplicate activity_id {b} (first seen on line 22)",
                        282: f"duplicate activity_id {b} (first seen on line 22)"}
    assert kept == [int(r.split(",")[0]) for r in rows[:300]]


def test_the_first_occurrence_wins_when_a_chunk_repeats_an_id_of_its_own_and_an_earlier():
    f = DuplicateFilter()
    f.filter(_rows([10, 11], 2))
    kept, rejected = f.filter(_rows([12, 11, 12, 11], 4))
    assert kept.column("activity_id").to_pylist() == [12]
    assert [(r.line, r.reason) for r in rejected] == [
        (5, "duplicate activity_id 11 (first seen on line 3)"),
        (6, "duplicate activity_id 12 (first seen on line 4)"),
        (7, "duplicate activity_id 11 (first seen on line 3)")]


def test_ids_beyond_32_bits_and_lines_far_apart():
    f = DuplicateFilter()
    big = 999_999_999_999_999_999
    f.filter(_rows([big, 1, 2**33], 2))
    f.filter(_rows([5], 2**40))
    kept, rejected = f.filter(_rows([2**33, big, 5, 6], 2**41))
    assert kept.column("activity_id").to_pylist() == [6]
    assert [r.reason for r in rejected] == [
        f"duplicate activity_id {2**33} (first seen on line 4)",
        f"duplicate activity_id {big} (first seen on line 2)",
        f"duplicate activity_id 5 (first seen on line {2**40})"]
