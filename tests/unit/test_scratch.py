import pytest
from molstream.scratch import HEADROOM_BYTES, Scratch, ScratchFull, parse_quantity


@pytest.mark.parametrize("text, value", [("8Gi", 8 * 1024**3), ("256Mi", 256 * 1024**2),
                                         ("500M", 500_000_000), ("1073741824", 1024**3),
                                         ("1.5Gi", 3 * 1024**3 // 2), ("10k", 10_000)])
def test_kubernetes_quantities(text, value):
    assert parse_quantity(text) == value


def test_a_size_that_is_not_one_names_itself():
    with pytest.raises(ValueError, match="'8 gigs' is not a size"):
        parse_quantity("8 gigs")


def test_the_limit_counts_what_the_scratch_space_already_holds(tmp_path):
    (tmp_path / "partial.download").write_bytes(b"x" * 1000)
    scratch = Scratch(tmp_path, limit=HEADROOM_BYTES + 1500)
    assert scratch.used() == 1000
    assert scratch.available() == HEADROOM_BYTES + 500
    scratch.require(HEADROOM_BYTES + 500, "the download")
    with pytest.raises(ScratchFull, match=r"not enough scratch space for the download: it needs "
                                          r"256 MiB, 256 MiB is free in .* \(limit 256 MiB\)"):
        scratch.require(HEADROOM_BYTES + 501, "the download")


def test_without_a_limit_the_disk_decides(tmp_path):
    scratch = Scratch(tmp_path / "not" / "yet")
    assert 0 < scratch.available()
    with pytest.raises(ScratchFull, match="MOLSTREAM_SCRATCH_LIMIT"):
        scratch.require(1 << 62, "the download")
