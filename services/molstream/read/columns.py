"""A file's column names matched to the contract's: without regard to case, through the map the
user gave (spec.columns, --column), or through ChEMBL's own names (CHEMBL_NAMES), in that order
of precedence."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..contract import COLUMN_NAMES, ContractError

# ChEMBL's own names for the contract's columns: its schema's (ACTIVITIES.STANDARD_TYPE,
# MOLECULE_DICTIONARY.MOLREGNO, COMPOUND_STRUCTURES.CANONICAL_SMILES, TARGET_DICTIONARY.TID ...,
# the sources in molstream.contract) and its web services' activity fields (molecule_pref_name,
# target_pref_name), which SQL exports and API dumps carry as their column names.
CHEMBL_NAMES = {
    "standard_type": "activity_type",
    "standard_units": "activity_units",
    "standard_value": "activity_value",
    "standard_relation": "activity_relation",
    "molregno": "molecule_id",
    "molecule_pref_name": "molecule_name",
    "max_phase": "molecule_max_phase",
    "canonical_smiles": "molecule_structure",
    "standard_inchi_key": "molecule_inchi_key",
    "tid": "target_id",
    "target_pref_name": "target_name",
    "organism": "target_organism",
}
# Names ChEMBL gives to more than one of the contract's columns: only a map says which.
AMBIGUOUS = {"pref_name": ("molecule_name", "target_name")}

_GIVEN, _CONTRACT, _CHEMBL = 0, 1, 2  # precedence of the ways a name maps (lower wins)
_HOW = {_GIVEN: "the column map", _CONTRACT: "its name", _CHEMBL: "ChEMBL's name"}


# A header cell shown in a message (which reaches the IngestRequest's status, readable by more
# people than the file): only when every cell looks like a column name. Whatever else the first
# line of a download is (a password file, a service's answer) is counted, never shown.
_SHOWABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_ .-]{0,63}|")
MAX_SHOWN = 20


def describe(fields: list[str]) -> str:
    """How many columns a header has, and their names when each looks like one:
    ``3 columns 'a', 'b', 'c'``, or ``1 column (not shown: not column names)``."""
    count = f"{len(fields)} column{'s' if len(fields) != 1 else ''}"
    if not all(_SHOWABLE.fullmatch(f) for f in fields):
        return f"{count} (not shown: not column names)"
    names = ", ".join(map(repr, fields[:MAX_SHOWN]))
    more = f", … ({len(fields) - MAX_SHOWN} more)" if len(fields) > MAX_SHOWN else ""
    return f"{count} {names}{more}"


def _key(name: str) -> str:
    return name.strip().lower()


def known(name: str, given: Mapping[str, str] = {}) -> bool:  # noqa: B006 - read only
    """Whether a header name maps to a contract column (used to detect the delimiter)."""
    key = _key(name)
    return key in {_key(k) for k in given} or key in COLUMN_NAMES or key in CHEMBL_NAMES


@dataclass(frozen=True)
class Mapped:
    """A header matched to the contract: per field, the contract column it gives or None."""

    fields: list[str]  # the names as the file has them
    columns: list[str | None]
    warnings: list[str]

    @property
    def arrow_names(self) -> list[str]:
        """Unique names for Arrow's reader: the contract's where a field gives one."""
        return [c or f"_unmapped_{i}" for i, c in enumerate(self.columns)]


def map_header(fields: list[str], given: Mapping[str, str]) -> Mapped:
    """Which contract column each field gives. Raises ContractError for a map naming a field
    the header lacks, two fields giving one column the same way, or a name ChEMBL uses for two
    columns (pref_name) that no map settles."""
    given = {_key(k): v for k, v in given.items()}
    if wrong := sorted({v for v in given.values() if v not in COLUMN_NAMES}):
        raise ContractError(f"the column map gives {', '.join(map(repr, wrong))}, not a column "
                            f"of the contract ({', '.join(COLUMN_NAMES)})")
    keys = [_key(f) for f in fields]
    if unknown := [k for k in given if k not in keys]:
        raise ContractError(
            f"the column map names {', '.join(map(repr, unknown))}, which the header does not "
            f"have (the header: {describe(fields)})")
    candidates: dict[str, list[tuple[int, int]]] = {}  # column → [(precedence, field index)]
    for i, key in enumerate(keys):
        how = ((_GIVEN, given[key]) if key in given else (_CONTRACT, key) if key in COLUMN_NAMES
               else (_CHEMBL, CHEMBL_NAMES[key]) if key in CHEMBL_NAMES else None)
        if how is not None:
            candidates.setdefault(how[1], []).append((how[0], i))
    columns: list[str | None] = [None] * len(fields)
    warnings = []
    for column, found in candidates.items():
        found.sort()
        best = [i for how, i in found if how == found[0][0]]
        if len(best) > 1:
            names = [fields[i] for i in best]
            if len({n.strip() for n in names}) == 1:
                raise ContractError(f"column {names[0].strip()!r} appears more than once in "
                                    "the header")
            raise ContractError(f"columns {' and '.join(map(repr, names))} both give {column} "
                                f"(by {_HOW[found[0][0]]}): map one of them with spec.columns "
                                "(--column), or drop one")
        columns[best[0]] = column
        if passed := [fields[i] for _, i in found[1:]]:
            warnings.append(f"column(s) {', '.join(map(repr, passed))} ignored: "
                            f"{fields[best[0]]!r} gives {column} (by {_HOW[found[0][0]]})")
    for i, key in enumerate(keys):
        if columns[i] is None and key in AMBIGUOUS:
            choices = AMBIGUOUS[key]
            if not all(c in columns for c in choices):
                raise ContractError(
                    f"column {fields[i]!r} is ChEMBL's name for both {' and '.join(choices)}: "
                    f"say which with spec.columns (--column {fields[i]}={choices[0]} or "
                    f"{fields[i]}={choices[1]})")
    return Mapped(list(fields), columns, warnings)
