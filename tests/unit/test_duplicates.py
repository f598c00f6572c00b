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


def test_many_chunks_in_any_order_match_a_plain_set(monkeypatch):
    """Ids in order (no look-up), then shuffled ones across more chunks than MAX_RUNS (runs
    merged): the same rows kept and the same first lines named as a set of seen ids gives."""
    import numpy as np

    monkeypatch.setattr(DuplicateFilter, "MAX_RUNS", 4)
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
