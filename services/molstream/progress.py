"""Progress bars for interactive runs (tqdm), silent in pods and tests."""

from __future__ import annotations

import os

from tqdm import tqdm


class Bar:
    def __init__(self, enabled: bool, desc: str, *, unit: str, total: int | None = None) -> None:
        # Two processes share the terminal in `make local`: each draws on its own line.
        line = int(os.environ.get("MOLSTREAM_PROGRESS_LINE", "0"))
        self._bar = tqdm(desc=desc, unit=unit, total=total, unit_scale=True, leave=True,
                         dynamic_ncols=True, position=line) if enabled else None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def update_to(self, done: int, total: int | None = None) -> None:
        if self._bar is not None:
            if total is not None and self._bar.total != total:
                self._bar.total = total
            self._bar.update(done - self._bar.n)
