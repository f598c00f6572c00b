"""How a file is written (`Format`): its delimiter (given, or detected from the header line), the
tokens that stand for NULL, the zip member to read, and a map from its column names to the
contract's. Quoting follows RFC 4180 whatever the delimiter: a field may be quoted or not, `""`
inside quotes is a quote, and `""` alone is an empty field."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass

DELIMITERS = (",", "\t", ";", "|")  # in the order detection prefers them on a tie
_NAMES = {",": "','", "\t": "tab", ";": "';'", "|": "'|'"}
_SEPARATED = {",": "comma-separated", "\t": "tab-separated", ";": "';'-separated",
              "|": "'|'-separated"}


@dataclass(frozen=True)
class Format:
    """What the user said of a file's format; what is left None is found from the file."""

    delimiter: str | None = None  # one of DELIMITERS; None: detected from the header line
    null_tokens: tuple[str, ...] = ()  # read as NULL, quoted or not (an empty field always is)
    member: str | None = None  # a zip archive's member to read
    columns: tuple[tuple[str, str], ...] = ()  # (a header of the file, the contract column)

    @property
    def column_map(self) -> dict[str, str]:
        return dict(self.columns)


DETECT = Format()  # nothing said: everything found from the file


def name(delimiter: str) -> str:
    return _NAMES[delimiter]


def separated(delimiter: str) -> str:
    return _SEPARATED[delimiter]


def split(line: str, delimiter: str) -> list[str]:
    """The header line's fields, as the CSV reader will see them."""
    return next(csv.reader(io.StringIO(line), delimiter=delimiter), [""])


def detect(line: str, known: Callable[[str], bool]) -> str:
    """The delimiter that splits the header line into the most column names we know, then into
    the most fields; the comma when none splits it at all."""
    def score(delimiter: str) -> tuple[int, int]:
        fields = split(line, delimiter)
        return sum(map(known, fields)), len(fields)
    return max(DELIMITERS, key=score)  # max keeps the first of equals: DELIMITERS' order

