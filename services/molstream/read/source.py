"""Opening a downloaded CSV file: its bytes as Arrow's reader pulls them (plain, or a gzip file
inflated on the fly with ISA-L and refused past the inflation cap), and its header row."""

from __future__ import annotations

import csv
import io
import threading
import zlib
from pathlib import Path

import numpy as np

from .lines import _LineBreaks

try:  # ISA-L's gzip: the same module API, inflating ~3x faster than zlib (0.6 s vs 1.8 s/1M rows)
    from isal import igzip as gzip
except ImportError:  # pragma: no cover - a platform without isal's wheels
    import gzip

MAX_ROW_BYTES = 16 * 1024 * 1024  # the largest row the reader accepts (and its largest block)
GZIP_MAGIC = b"\x1f\x8b"


class ReadError(ValueError):
    """The file cannot be read as CSV at all."""


class _TooLarge(ReadError):
    """A gzip file inflating past the cap."""


class _Source(io.RawIOBase):
    """A CSV file's bytes as Arrow's reader pulls them, from its read-ahead thread: a gzip file
    inflated on the fly and refused past `max_bytes`; and, given a `lead`, never more than that
    many bytes ahead of what the parser has taken (`took`). Left alone, Arrow reads some thirty
    blocks ahead of the parser (~130 MB at 4 MiB blocks) whenever reading outpaces parsing."""

    WAIT_S = 0.5  # past this, read on anyway: the parser may need more than its lead for a row

    def __init__(self, path: Path, max_bytes: int | None, *, lead: int | None = None,
                 breaks: _LineBreaks | None = None) -> None:
        with open(path, "rb") as f:
            self.gzipped = f.read(2) == GZIP_MAGIC
        self._file = gzip.open(path, "rb") if self.gzipped else open(path, "rb")  # noqa: SIM115
        self._name, self._max_bytes = path.name, max_bytes
        self._read, self._allowed = 0, lead
        self._turn = threading.Condition()
        self._stopped = False
        self._breaks = breaks

    def readable(self) -> bool:
        return True

    def took(self, n: int) -> None:
        """The parser has taken `n` more bytes: let the read-ahead go that much further."""
        if self._allowed is not None:
            with self._turn:
                self._allowed += n
                self._turn.notify_all()

    def stop(self) -> None:
        """End the read-ahead (reads return end of file), so that the reader can close."""
        with self._turn:
            self._stopped = True
            self._turn.notify_all()

    def readinto(self, buffer) -> int:
        if self._allowed is not None:
            with self._turn:
                if self._read >= self._allowed and not self._stopped:
                    self._turn.wait(self.WAIT_S)
        view, n = memoryview(buffer), 0
        while n < len(view) and not self._stopped:  # whole blocks: one per parsed batch
            try:
                got = self._file.readinto(view[n:])
            except (OSError, EOFError, zlib.error) as e:
                raise ReadError(f"{self._name} is not a valid gzip file: {e}") from None
            if not got:
                break
            n += got
        self._read += n
        if self._breaks is not None:
            self._breaks.feed(np.frombuffer(view[:n], np.uint8))
        if self.gzipped and self._max_bytes is not None and self._read > self._max_bytes:
            raise _TooLarge(
                f"{self._name} inflates to more than {self._max_bytes} bytes "
                "(MOLSTREAM_MAX_DECOMPRESSED_BYTES): refusing it as a possible gzip bomb")
        return n

    def close(self) -> None:
        self.stop()
        self._file.close()
        super().close()


def _inflate_all(path: Path, max_bytes: int | None) -> None:
    """Inflate a gzip file to its end, for nothing but the cap's check (and gzip's own)."""
    with _Source(path, max_bytes) as source:
        if source.gzipped and max_bytes is not None:
            buffer = bytearray(1 << 20)
            while source.readinto(buffer):
                pass


def read_header(path: Path, max_bytes: int | None = None) -> list[str]:
    with io.BufferedReader(_Source(path, max_bytes)) as f:
        first = f.readline(MAX_ROW_BYTES)
    if not first.strip():
        raise ReadError("the file is empty: no header row")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ReadError("the header row is not valid UTF-8") from None
    return [h.strip() for h in next(csv.reader(io.StringIO(text)))]
