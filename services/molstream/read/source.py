"""Opening a downloaded CSV file: its bytes as Arrow's reader pulls them, plain or inflated on
the fly (gzip, bzip2, xz, zstd or a zip member, told by the file's first bytes:
molstream.read.compression) and refused past the inflation cap."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np

from . import compression
from .compression import STREAM_ERRORS, TooLarge
from .errors import ReadError
from .lines import _LineBreaks

MAX_ROW_BYTES = 16 * 1024 * 1024  # the largest row the reader accepts (and its largest block)


class _Source(io.RawIOBase):
    """A CSV file's bytes as Arrow's reader pulls them, from its read-ahead thread: a compressed
    file inflated on the fly and refused past `max_bytes`; and, given a `lead`, never more than
    that many bytes ahead of what the parser has taken (`took`). Left alone, Arrow reads some
    thirty blocks ahead of the parser (~130 MB at 4 MiB blocks) whenever reading outpaces
    parsing."""

    WAIT_S = 0.5  # past this, read on anyway: the parser may need more than its lead for a row

    def __init__(self, path: Path, max_bytes: int | None, *, lead: int | None = None,
                 breaks: _LineBreaks | None = None, member: str | None = None) -> None:
        self._name, self._max_bytes = path.name, max_bytes
        self._read, self._allowed = 0, lead
        self._turn = threading.Condition()
        self._stopped = False
        self._breaks = breaks
        self._file = None
        self.compression = compression.detect(path)
        self._file = compression.open_stream(path, self.compression, member=member,
                                             max_bytes=max_bytes)

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
            except STREAM_ERRORS as e:
                raise ReadError(f"{self._name} is not a valid {self.compression or 'CSV'} "
                                f"file: {e}") from None
            if not got:
                break
            n += got
        self._read += n
        if self._breaks is not None:
            self._breaks.feed(np.frombuffer(view[:n], np.uint8))
        if self.compression and self._max_bytes is not None and self._read > self._max_bytes:
            raise TooLarge(self._name, self._max_bytes, self.compression)
        return n

    def close(self) -> None:
        self.stop()
        if self._file is not None:
            self._file.close()
        super().close()


def _inflate_all(path: Path, max_bytes: int | None, member: str | None = None) -> None:
    """Inflate a compressed file to its end, for nothing but the cap's check (and its format's
    own)."""
    with _Source(path, max_bytes, member=member) as source:
        if source.compression and max_bytes is not None:
            buffer = bytearray(1 << 20)
            while source.readinto(buffer):
                pass
