"""The reader's error: a file that cannot be read as CSV at all."""

from __future__ import annotations


class ReadError(ValueError):
    """The file cannot be read as CSV at all."""
