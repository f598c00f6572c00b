"""Mirror mode: the database follows a source's releases. The file is upserted; when the ingest
completes, the activities that the previous mirror of the same source held and this file lacks
are soft-deleted (`retired_by` says by which run: a person's soft delete leaves it NULL), and
activities a mirror retired that a later file brings again are made active again as they are
written (molstream.apply).

Which activities a file held is kept as a roaring bitmap of their ids: one per batch in
`applied_batch.ids` (whichever worker applies it, on whichever partition), their union stored
on the run (`ingest_run.mirror_ids`) when it completes, a few MB for ChEMBL's 24M activities.
Nothing is retired before the ingest completes: a run that fails halfway retires nothing, and
the next mirror compares itself with the last one that completed.

Molecules and targets are never retired: a molecule no active activity refers to any more is
still a compound of the release's molecule dictionary, and another source may measure it.
"""

from __future__ import annotations

import logging
from itertools import islice

import numpy as np
from pyroaring import BitMap64
from sqlalchemy import and_, false, func, select, true, update
from sqlalchemy.engine import Connection

from .db import Activity, AppliedBatch, IngestRun

_RUN = IngestRun.__table__
_APPLIED = AppliedBatch.__table__
_ACTIVITY = Activity.__table__
CHUNK = 10_000  # ids per UPDATE
# A mirror retires at most this share of the previous release's activities (ChEMBL's releases
# drop a few percent); more, and it retires nothing (MOLSTREAM_MIRROR_MAX_RETIRE).
MAX_RETIRE = 0.25

log = logging.getLogger(__name__)


def batch_ids(keys: np.ndarray) -> bytes:
    """A batch's activity ids, as `applied_batch.ids` keeps them."""
    return BitMap64(keys.astype(np.uint64, copy=False)).serialize()


def restore_retired(conn: Connection, ids: list[int]) -> int:
    """Make the activities of `ids` that a mirror retired active again; how many."""
    restored = 0
    for start in range(0, len(ids), CHUNK):
        restored += conn.execute(update(_ACTIVITY).where(
            _ACTIVITY.c.id.in_(ids[start:start + CHUNK]), _ACTIVITY.c.active == false(),
            _ACTIVITY.c.retired_by.is_not(None)).values(active=True, retired_by=None)).rowcount
    return restored


def complete(conn: Connection, ingest_id: str, *, max_retire: float = MAX_RETIRE) -> dict:
    """In the transaction that completes the mirror run `ingest_id`: retire what the previous
    mirror of its source held and its file lacks, and keep its own ids for the next one. The
    figures for its report.

    Nothing is retired, and the run does not become the next one's "previous", when that
    would retire more than `max_retire` of the previous release's activities, or when its file
    held none: a file cut short, a wrong delimiter or decimal comma that rejected most rows, an
    IngestRequest pointed at another dataset. What another mirror still running holds is never
    retired (two runs of one source overlapping: a rerun, a schedule)."""
    run = conn.execute(select(_RUN.c.number, _RUN.c.mirror_key).where(
        _RUN.c.id == ingest_id)).one()
    held = _union(conn.execute(select(_APPLIED.c.ids).where(
        _APPLIED.c.ingest_id == ingest_id, _APPLIED.c.ids.is_not(None))).scalars())
    others = _union(conn.execute(select(_APPLIED.c.ids).join(
        _RUN, _RUN.c.id == _APPLIED.c.ingest_id).where(
        _RUN.c.mode == "mirror", _RUN.c.status == "running", _RUN.c.id != ingest_id,
        _APPLIED.c.ids.is_not(None))).scalars())
    previous = conn.execute(select(_RUN.c.id, _RUN.c.mirror_ids).where(
        _RUN.c.mirror_key == run.mirror_key, _RUN.c.status == "completed",
        _RUN.c.mirror_ids.is_not(None), _RUN.c.id != ingest_id,
    ).order_by(_RUN.c.finished_on.desc().nulls_last()).limit(1)).first()
    before = BitMap64.deserialize(previous.mirror_ids) if previous else BitMap64()
    gone = before - held - others
    figures = _figures(conn, ingest_id, previous.id if previous else None)
    held_back = _held_back(run.number, held, before, gone, max_retire)
    if held_back:
        log.warning("mirror %s retires nothing: %s", ingest_id, held_back)
        conn.execute(update(_APPLIED).where(_APPLIED.c.ingest_id == ingest_id).values(ids=None))
        return {**figures, "retired": 0, "held_back": len(gone), "held_back_reason": held_back}
    retired = 0
    for chunk in _chunks(gone):
        retired += conn.execute(update(_ACTIVITY).where(and_(
            _ACTIVITY.c.id.in_(chunk), _ACTIVITY.c.active == true(),
        )).values(active=False, retired_by=run.number)).rowcount
    # The next mirror compares itself with this run; older runs' sets are not needed again.
    conn.execute(update(_RUN).where(_RUN.c.mirror_key == run.mirror_key, _RUN.c.id != ingest_id)
                 .values(mirror_ids=None))
    conn.execute(update(_RUN).where(_RUN.c.id == ingest_id).values(mirror_ids=held.serialize()))
    conn.execute(update(_APPLIED).where(_APPLIED.c.ingest_id == ingest_id).values(ids=None))
    return {**figures, "retired": retired, "held_back": 0,
            # in the previous file, not in this one, but soft-deleted already (by a person)
            "absent_already_inactive": len(gone) - retired}


def _held_back(number: int | None, held: BitMap64, before: BitMap64, gone: BitMap64,
               max_retire: float) -> str | None:
    """Why this run must retire nothing, if it must."""
    if number is None:
        return "its run has no number (a run recorded by an older molstream)"
    if not before:
        return None  # the first mirror of its source: nothing to retire
    if not held:
        return "its file held no activity"
    if len(gone) > max_retire * len(before):
        return (f"it would retire {len(gone):,} of the previous release's {len(before):,} "
                f"activities ({100 * len(gone) / len(before):.1f}%), more than "
                f"MOLSTREAM_MIRROR_MAX_RETIRE={max_retire:g} allows; a file cut short or "
                "mostly rejected? (raise the limit to accept it)")
    return None


def _figures(conn: Connection, ingest_id: str, previous: str | None) -> dict:
    inserted, restored = conn.execute(select(
        func.coalesce(func.sum(_APPLIED.c.inserted), 0),
        func.coalesce(func.sum(_APPLIED.c.restored), 0)).where(
        _APPLIED.c.ingest_id == ingest_id)).one()
    return {"previous": previous, "added": int(inserted), "restored": int(restored)}


def _union(serialized) -> BitMap64:
    out = BitMap64()
    for ids in serialized:
        out |= BitMap64.deserialize(ids)
    return out


def _chunks(ids: BitMap64):
    """`ids` in lists of CHUNK, without a list of them all (24M ids: ~1 GB of Python ints)."""
    it = iter(ids)
    while chunk := list(islice(it, CHUNK)):
        yield chunk
