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

import numpy as np
from pyroaring import BitMap64
from sqlalchemy import and_, false, func, select, true, update
from sqlalchemy.engine import Connection

from .db import Activity, AppliedBatch, IngestRun

_RUN = IngestRun.__table__
_APPLIED = AppliedBatch.__table__
_ACTIVITY = Activity.__table__
CHUNK = 10_000  # ids per UPDATE


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


def complete(conn: Connection, ingest_id: str) -> dict:
    """In the transaction that completes the mirror run `ingest_id`: retire what the previous
    mirror of its source held and its file lacks, and keep its own ids for the next one. The
    figures for its report."""
    run = conn.execute(select(_RUN.c.number, _RUN.c.mirror_key).where(
        _RUN.c.id == ingest_id)).one()
    held = BitMap64()
    for (ids,) in conn.execute(select(_APPLIED.c.ids).where(
            _APPLIED.c.ingest_id == ingest_id, _APPLIED.c.ids.is_not(None))):
        held |= BitMap64.deserialize(ids)
    previous = conn.execute(select(_RUN.c.id, _RUN.c.mirror_ids).where(
        _RUN.c.mirror_key == run.mirror_key, _RUN.c.status == "completed",
        _RUN.c.mirror_ids.is_not(None), _RUN.c.id != ingest_id,
    ).order_by(_RUN.c.number.desc()).limit(1)).first()
    gone = (BitMap64.deserialize(previous.mirror_ids) - held) if previous else BitMap64()
    retired = 0
    ids = list(gone)
    for start in range(0, len(ids), CHUNK):
        retired += conn.execute(update(_ACTIVITY).where(and_(
            _ACTIVITY.c.id.in_(ids[start:start + CHUNK]), _ACTIVITY.c.active == true(),
        )).values(active=False, retired_by=run.number)).rowcount
    conn.execute(update(_RUN).where(_RUN.c.id == ingest_id).values(mirror_ids=held.serialize()))
    conn.execute(update(_APPLIED).where(_APPLIED.c.ingest_id == ingest_id).values(ids=None))
    inserted, restored = conn.execute(select(
        func.coalesce(func.sum(_APPLIED.c.inserted), 0),
        func.coalesce(func.sum(_APPLIED.c.restored), 0)).where(
        _APPLIED.c.ingest_id == ingest_id)).one()
    return {"previous": previous.id if previous else None, "held": len(held),
            "added": int(inserted), "retired": retired, "restored": int(restored),
            # in the previous file, not in this one, but soft-deleted already (by a person)
            "absent_already_inactive": len(gone) - retired}
