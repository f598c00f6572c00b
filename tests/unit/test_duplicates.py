import pyarrow as pa
from molstream.contract import LINE
from molstream.fetcher import DuplicateFilter


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
