"""The end of an ingest, in one place: completing it, and announcing it exactly once.

`Completion.settle` is idempotent and cheap when there is nothing to do, so the worker runs it
after every batch, every end marker and every redelivery, and on a timer for every ingest still
open: whichever worker applies the last piece, or takes over a dead one's partitions, finishes
the ingest. It does two things in one transaction:

1. An ingest that is `running`, whose end marker has arrived and whose every batch is recorded
   in `applied_batch`, becomes `completed`, with its report stored beside it: every
   announcement of it carries the same figures.
2. The announcement of a `completed` or `failed` ingest is claimed: `UPDATE … SET announced_by
   = me WHERE announced_by IS NULL OR the claim is older than its lease`. One worker's update
   wins (the row lock serialises them on PostgreSQL; SQLite has one writer). A worker with a
   static Kafka membership id claims under that id, so that, restarted, it takes its own
   claims back at once (two live workers never share one: Kafka fences the older).

The winner gets the report ready, renews its claim (`renew`: still its own, or it gives up),
publishes the `completed` (or `failed`) event, waits for Kafka's ack, then marks the run
announced. If it dies before the ack, its claim expires and another worker announces the same
stored report. Claims are timed by the database's clock, never a Pod's, and a lease runs from
the renewal just before the event: it outlasts the longest a live claimer then waits for Kafka
(`lease_for`), so only a death between the ack and the mark (or a database away for longer than
the lease just then) can repeat an announcement; the operator ignores a second one for a
finished run.

`applied_part` (molstream.apply's claims of a batch's first step) is emptied for an ingest once
it is completed or failed, and swept of any finished ingest's rows (`sweep`).
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

from sqlalchemy import Engine, and_, delete, func, or_, select, update
from sqlalchemy.engine import Connection

from . import mirror, pending, report
from .config import Mode
from .db import AppliedBatch, AppliedPart, IngestRun, epoch_now, utcnow

_RUN = IngestRun.__table__
_APPLIED = AppliedBatch.__table__
_PART = AppliedPart.__table__
_DONE = ("completed", "failed")

# A claimed announcement not made within this long is claimed again by another worker (its
# claimer is presumed dead; publishing an event normally takes milliseconds).
LEASE_S = 30.0


def lease_for(kafka_outage_s: float) -> float:
    """The lease of a claim, from the worst case of a live claimer between its renewal and
    its mark: the event's publication retried for up to `kafka_outage_s`, whose last attempt
    may wait as long again for its ack, plus a backoff pause (at most 10 s) and the mark's
    own write."""
    return max(LEASE_S, 2 * kafka_outage_s + 30)


@dataclass(frozen=True)
class Announcement:
    ingest_id: str
    status: str  # "completed" or "failed"
    report: dict | None  # completed: the stored report
    failure: str | None  # failed: why


def claimer_id() -> str:
    """This worker process, as its claims name it."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


class Completion:
    def __init__(self, engine: Engine, *, claimer: str | None = None,
                 lease_s: float = LEASE_S, mirror_max_retire: float = mirror.MAX_RETIRE
                 ) -> None:
        self.engine = engine
        self.claimer = claimer or claimer_id()
        self.lease_s = lease_s
        self.mirror_max_retire = mirror_max_retire

    def settle(self, ingest_id: str) -> Announcement | None:
        """Complete the ingest if it is whole; return what this worker must announce, if it
        won the claim to (then call `announced` once the event is acknowledged)."""
        with self.engine.connect() as conn:  # a read first: nothing to do, most of the time
            run = conn.execute(select(_RUN.c.status, _RUN.c.batches_expected, _RUN.c.announced,
                                      _RUN.c.mode)
                               .where(_RUN.c.id == ingest_id)).first()
            if run is None or run.announced or (run.status == "running"
                                                and run.batches_expected is None):
                return None
            held = pending.tables(conn)
        if held and (run.status != "running" or self._applied(ingest_id) >= run.batches_expected):
            # Rows a large SQLite ingest held out of id order, into the table a range at a
            # time, ahead of the transaction that completes it (which merges what is left)
            pending.merge_each(self.engine)
        # It reads before it writes: on SQLite, take the write lock at BEGIN (molstream.db).
        with self.engine.execution_options(write_lock=True).begin() as conn:
            if run.status != "running":  # failed: what it applied is kept, and in the table
                pending.merge(conn)
            else:
                applied = self._applied(ingest_id, conn)
                if applied >= run.batches_expected:
                    pending.merge(conn)
                    # a mirror retires what its release dropped in this same transaction
                    mirrored = (mirror.complete(conn, ingest_id,
                                                max_retire=self.mirror_max_retire)
                                if run.mode == Mode.MIRROR.value else None)
                    rep = report.build(conn, ingest_id, mirror=mirrored)
                    conn.execute(update(_RUN).where(
                        _RUN.c.id == ingest_id, _RUN.c.status == "running").values(
                        status="completed", finished_on=utcnow(), report=rep,
                        batches_applied=rep["batches"], rows_applied=rep["rows_applied"],
                        rows_written=rep["rows_written"]))
            # (a finished ingest's batches are all recorded or never will be: their claims go)
            finished = select(_RUN.c.id).where(_RUN.c.id == ingest_id,
                                               _RUN.c.status.in_(_DONE)).exists()
            conn.execute(delete(_PART).where(_PART.c.ingest_id == ingest_id, finished))
            # (a failed mirror's batches' ids: nobody will compare with them)
            conn.execute(update(_APPLIED).where(_APPLIED.c.ingest_id == ingest_id,
                                                _APPLIED.c.ids.is_not(None), finished)
                         .values(ids=None))
            claimed = conn.execute(update(_RUN).where(and_(
                _RUN.c.id == ingest_id, _RUN.c.status.in_(_DONE), _RUN.c.announced.is_(False),
                or_(_RUN.c.announced_by.is_(None), _RUN.c.announced_by == self.claimer,
                    _RUN.c.claimed_at < epoch_now() - self.lease_s),
            )).values(announced_by=self.claimer, claimed_at=epoch_now())).rowcount
            if claimed != 1:
                return None
            done = conn.execute(select(_RUN.c.status, _RUN.c.report, _RUN.c.failure)
                                .where(_RUN.c.id == ingest_id)).one()
        return Announcement(ingest_id, done.status, done.report, done.failure)

    def _applied(self, ingest_id: str, conn: Connection | None = None) -> int:
        """Batches of the ingest recorded as applied."""
        if conn is None:
            with self.engine.connect() as read:
                return self._applied(ingest_id, read)
        return conn.execute(select(func.count()).select_from(_APPLIED).where(
            _APPLIED.c.ingest_id == ingest_id)).scalar_one()

    def renew(self, ingest_id: str) -> bool:
        """Renew this worker's claim just before it announces; False when the claim is lost
        (another worker took it over after it expired): then this one must not announce."""
        with self.engine.begin() as conn:
            return conn.execute(update(_RUN).where(
                _RUN.c.id == ingest_id, _RUN.c.announced_by == self.claimer,
                _RUN.c.announced.is_(False)).values(claimed_at=epoch_now())).rowcount == 1

    def sweep(self) -> int:
        """Drop the batch claims (`applied_part`) of every finished ingest: left by a worker
        that died, or by an older molstream. How many went."""
        with self.engine.connect() as conn:  # empty, nearly always: a read, no write lock
            if conn.execute(select(_PART.c.seq).limit(1)).first() is None:
                return 0
        with self.engine.begin() as conn:
            return conn.execute(delete(_PART).where(_PART.c.ingest_id.in_(
                select(_RUN.c.id).where(_RUN.c.status.in_(_DONE))))).rowcount

    def announced(self, ingest_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(_RUN).where(
                _RUN.c.id == ingest_id, _RUN.c.announced_by == self.claimer).values(
                announced=True))

    def open_ingests(self) -> list[str]:
        """Ingests `settle` may still have work for: whole but not completed, or finished but
        not announced (a worker died in between)."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(_RUN.c.id).where(or_(
                and_(_RUN.c.status == "running", _RUN.c.batches_expected.is_not(None)),
                and_(_RUN.c.status.in_(_DONE), _RUN.c.announced.is_(False)),
            ))).scalars())

    def finished(self, ingest_ids: set[str]) -> set[str]:
        """Those of `ingest_ids` that are completed or failed, and announced."""
        with self.engine.connect() as conn:
            return set(conn.execute(select(_RUN.c.id).where(
                _RUN.c.id.in_(ingest_ids), _RUN.c.status.in_(_DONE),
                _RUN.c.announced.is_(True))).scalars())

    def progress(self, ingest_id: str) -> dict | None:
        """Figures for a progress event, summed from the batches' records."""
        with self.engine.connect() as conn:
            run = conn.execute(select(_RUN.c.batches_expected, _RUN.c.rows_total)
                               .where(_RUN.c.id == ingest_id)).first()
            if run is None:
                return None
            batches, rows = conn.execute(select(
                func.count(), func.coalesce(func.sum(_APPLIED.c.rows), 0)).where(
                _APPLIED.c.ingest_id == ingest_id)).one()
            written = 0
            for (per_batch,) in conn.execute(select(_APPLIED.c.written).where(
                    _APPLIED.c.ingest_id == ingest_id)):
                written += per_batch.get("activity", 0)
        return {"rows_written": written, "rows_applied": int(rows), "batches_applied": batches,
                "batches_total": run.batches_expected, "rows_total": run.rows_total}
