"""Compression told by content (magic bytes), streamed, under the inflation cap."""

import bz2
import gzip
import lzma
import zipfile

import pytest
import zstandard
from molstream.read import ReadError, convert
from molstream.read.compression import detect
from molstream.read.dialect import Format

HEADER = b"activity_id,activity_type,molecule_id,target_id,target_name\r\n"
ROWS = b"".join(b"%d,IC50,7,11,ABL1\r\n" % i for i in range(1, 3001))
DATA = HEADER + ROWS


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _zstd_frames(data: bytes) -> bytes:
    """Two frames, as `zstd` writes a file compressed in parts (or files concatenated)."""
    half = len(data) // 2
    c = zstandard.ZstdCompressor()
    return c.compress(data[:half]) + c.compress(data[half:])


COMPRESSED = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": _zstd_frames,
    "zip": lambda d: _zip({"activities.csv": d}),
}


def _ids(path, **kw) -> list[str]:
    with convert(path, path.parent / "h5", **kw) as c:
        return [r["activity_id"] for ch in c.chunks(10_000) for r in ch.to_pylist()]


@pytest.mark.parametrize("kind", list(COMPRESSED))
def test_each_compression_is_told_by_its_bytes_not_its_name(tmp_path, kind):
    p = tmp_path / "activities.csv"  # no suffix says it is compressed
    p.write_bytes(COMPRESSED[kind](DATA))
    assert detect(p) == kind
    assert _ids(p, max_decompressed_bytes=len(DATA)) == [str(i) for i in range(1, 3001)]


def test_a_plain_file_named_gz_is_read_as_plain(tmp_path):
    p = tmp_path / "activities.csv.gz"
    p.write_bytes(DATA)
    assert detect(p) is None
    assert len(_ids(p)) == 3000
    p.write_bytes(b"BZh9,PK" + DATA)  # bzip2's first magic bytes alone make no bzip2 file
    assert detect(p) is None


@pytest.mark.parametrize("kind", list(COMPRESSED))
def test_a_bomb_of_each_format_is_refused(tmp_path, kind):
    p = tmp_path / f"bomb.{kind}"
    p.write_bytes(COMPRESSED[kind](HEADER + b"\0" * 20_000_000))
    with pytest.raises(ReadError, match=f"inflates to more than 1000000 bytes "
                                        rf"\(MOLSTREAM_MAX_DECOMPRESSED_BYTES\): refusing it as "
                                        f"a possible {kind} bomb"):
        convert(p, tmp_path / "h5", max_decompressed_bytes=1_000_000)
    assert not (tmp_path / "h5").exists()


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz", "zstd"])
def test_a_truncated_file_of_each_format_fails(tmp_path, kind):
    whole = COMPRESSED[kind](DATA * 20)
    p = tmp_path / "cut"
    p.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(ReadError, match=f"cut is not a valid {kind} file"):
        convert(p, tmp_path / "h5")


def test_zip_member_chosen_or_named(tmp_path):
    p = tmp_path / "a.zip"
    other = DATA.replace(b"IC50", b"Ki")
    p.write_bytes(_zip({"README.txt": b"hello", "__MACOSX/._a.csv": b"x", "data/a.csv": DATA}))
    assert len(_ids(p)) == 3000  # the only CSV file among others
    p.write_bytes(_zip({"a.csv": DATA, "b.csv": other}))
    with pytest.raises(ReadError, match=r"a.zip holds 2 CSV files \('a.csv', 'b.csv'\): name "
                                        r"the one to read with spec.format.member"):
        convert(p, tmp_path / "h5")
    with convert(p, tmp_path / "h5", fmt=Format(member="b.csv")) as c:
        assert {r["activity_type"] for ch in c.chunks(10_000) for r in ch.to_pylist()} == {"Ki"}
    with pytest.raises(ReadError, match="a.zip has no member 'c.csv'.*'a.csv', 'b.csv'"):
        convert(p, tmp_path / "h5", fmt=Format(member="c.csv"))
    p.write_bytes(_zip({}))
    with pytest.raises(ReadError, match="a zip archive holding no file"):
        convert(p, tmp_path / "h5")


def test_zip_members_whose_reads_are_not_bounded_are_refused(tmp_path):
    p = tmp_path / "a.zip"
    p.write_bytes(_zip({"a.csv": DATA}, zipfile.ZIP_BZIP2))
    with pytest.raises(ReadError, match="only stored or deflated zip members"):
        convert(p, tmp_path / "h5")
    p.write_bytes(_zip({"a.csv": DATA}, zipfile.ZIP_STORED))
    assert len(_ids(p)) == 3000


def test_a_zip_member_is_refused_by_its_declared_size_before_it_is_read(tmp_path):
    p = tmp_path / "a.zip"
    p.write_bytes(_zip({"a.csv": DATA}))
    with pytest.raises(ReadError, match="possible zip bomb"):
        convert(p, tmp_path / "h5", max_decompressed_bytes=len(DATA) - 1)


def test_a_broken_zip_fails_with_a_clear_error(tmp_path):
    whole = _zip({"a.csv": DATA})
    p = tmp_path / "cut.zip"
    p.write_bytes(whole[: len(whole) // 2])  # the central directory is gone
    with pytest.raises(ReadError, match="cut.zip is not a valid zip file"):
        convert(p, tmp_path / "h5")
