"""What applying a batch yields (`Applied`, `Refused`), and what the batches applied in one
transaction share (`Transaction`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import Mode
from .contract import Rejection
from .messages import TABLES

# The tables whose rows a person may soft-delete and a file bring again.
KEYED = ("molecule", "target", "activity")


@dataclass
class Transaction:
    """What the batches applied in one transaction share."""

    # Molecule and target rows this transaction already wrote: the same row again (a
    # molecule measured in many batches) would change nothing, so it is not sent again. Only
    # within one transaction: nobody else can change those rows before it commits.
    written: dict[str, dict[int, tuple]] = field(
        default_factory=lambda: {"molecule": {}, "target": {}})
    # The number (db.IngestRun.number) of each ingest whose batches it applies: provenance.
    runs: dict[str, int] = field(default_factory=dict)
    # Dimension ids this transaction has read back from their tables (molstream.dimensions):
    # no need to check them again before it ends.
    verified: dict[str, dict] = field(default_factory=dict)
    stamp: str | None = None  # SQLite: created_on/last_modified_on of the rows it inserts

    def remembered(self, table: str, mode: Mode) -> dict[int, tuple]:
        """Rows of `table` already written by this transaction. Only upserts write what they
        send: an insert-only batch kept existing rows, so it remembers nothing (a later upsert
        of the same tuple in the transaction must still be sent)."""
        return self.written[table] if mode.upserts else {}

    @property
    def stamps(self) -> tuple[str, ...]:
        """What ends each row this transaction inserts: the stamp twice on SQLite, or nothing."""
        return () if self.stamp is None else (self.stamp, self.stamp)


@dataclass
class Applied:
    """What one batch did: rows applied, rows written (inserted or changed) per table, rows
    it changed that are soft-deleted in the database and stay so (`inactive`, not counted in
    `written`), and the rows the database refused."""

    ingest_id: str
    seq: int
    rows: int
    written: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    inactive: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KEYED, 0))
    inserted: int = 0  # activities inserted (counted in mirror mode)
    restored: int = 0  # activities a mirror had retired, active again (mirror mode)
    new_ids: dict[str, dict] = field(default_factory=dict)
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def rows_written(self) -> int:
        return self.written["activity"]

    def add(self, part: Applied) -> None:
        self.add_counts(part.written, part.inactive)
        self.inserted += part.inserted
        self.restored += part.restored
        for dimension, ids in part.new_ids.items():
            self.new_ids.setdefault(dimension, {}).update(ids)

    def add_counts(self, written: dict[str, int] | None, inactive: dict[str, int] | None
                   ) -> None:
        for table, n in (written or {}).items():
            self.written[table] += n
        for table, n in (inactive or {}).items():
            self.inactive[table] += n

    def take_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """The counts so far, handed over (to `applied_part`); zero from now on."""
        counts = (self.written, self.inactive)
        self.written, self.inactive = dict.fromkeys(TABLES, 0), dict.fromkeys(KEYED, 0)
        return counts


@dataclass(frozen=True)
class Refused:
    """A batch the database cannot take for a reason that is not its rows' (a missing table or
    column, a permission): its ingest has been marked failed. (A batch whose every row is
    refused for its values is `Applied`, all its rows rejected.)"""

    ingest_id: str
    seq: int
    reason: str


Outcome = Applied | Refused | None  # None: applied before (a redelivery), or its ingest failed
