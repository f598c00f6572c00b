"""The fetcher's scratch space (MOLSTREAM_WORK_DIR): what an ingest needs there, checked before
it is spent, so that a full disk is a clear error at the start rather than a failure halfway.

An ingest keeps the download whole (a .gz stays compressed: it is inflated as it is read) and,
while converting, one HDF5 block at a time (molstream.read.hdf5: EXPORT_BYTES of rows, deleted once
read back). So it needs the download's size plus HEADROOM_BYTES. On Kubernetes the space is an
emptyDir whose sizeLimit the file system does not show (kubelet evicts the Pod past it): the
operator hands the limit over as MOLSTREAM_SCRATCH_LIMIT, and both bounds are checked.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

# Two HDF5 blocks of molstream.read.hdf5.EXPORT_BYTES (16 MiB of rows each) and what vaex and the
# file system add around them, with room to spare.
HEADROOM_BYTES = 256 * 1024**2

_SUFFIXES = {"": 1, "k": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
             "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}


def parse_quantity(text: str) -> int:
    """Bytes of a Kubernetes quantity ("8Gi", "500M", "1073741824")."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(Ki|Mi|Gi|Ti|k|M|G|T)?\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not a size (e.g. 8Gi, 500M or a number of bytes)")
    return int(float(match.group(1)) * _SUFFIXES[match.group(2) or ""])


class ScratchFull(OSError):
    pass


@dataclass(frozen=True)
class Scratch:
    root: Path
    limit: int | None = None  # bytes, when the space has a limit the file system does not show

    def available(self) -> int:
        existing = self.root
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        free = shutil.disk_usage(existing).free
        if self.limit is not None:
            free = min(free, self.limit - self.used())
        return max(0, free)

    def used(self) -> int:
        if not self.root.exists():
            return 0
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def require(self, need: int, what: str) -> None:
        free = self.available()
        if need > free:
            where = f"{self.root}" + (f" (limit {_gib(self.limit)})" if self.limit else "")
            raise ScratchFull(
                f"not enough scratch space for {what}: it needs {_gib(need)}, {_gib(free)} is "
                f"free in {where}; give the fetcher more (MOLSTREAM_WORK_DIR, "
                "MOLSTREAM_SCRATCH_LIMIT; on Kubernetes the chart's fetcher.scratchSize)")


def _gib(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB" if n >= 1024**3 else f"{n / 1024**2:.0f} MiB"
