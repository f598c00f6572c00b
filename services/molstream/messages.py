"""What travels through Kafka: row batches, the end-of-ingest marker, rejections and events.

`<prefix>.rows` carries two kinds of message, told apart by the `kind` header:
- `rows`: one batch of validated rows as an Arrow IPC stream (typed columns, compressed with
  zstd: the file's line numbers and the contract's columns the file has); headers carry the
  ingest id, the batch's sequence number, the mode and the number of rows in the whole file
  (which lets the worker plan a large ingest). The key is
  `<ingest_id>/<seq>`, deterministic, so a fetcher run again for the same ingest republishes the
  same batches and the worker recognises them.
- `end`: JSON totals of the ingest (batches, rows published and rejected), sent after every
  batch was acknowledged, so the worker knows when the last batch is in.
`<prefix>.rejected` carries one JSON message per rejected row (line number and reason).
`<prefix>.events` carries JSON progress events, keyed by ingest id; the operator turns them into
the IngestRequest's status. Their types and fields are listed in EVENT_FIELDS.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from .config import Mode

ROWS, END = "rows", "end"
TABLES = ("phase", "activity_type", "unit", "relation", "organism", "molecule", "target",
          "activity")
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "started": ("source",),
    "downloading": ("bytes_done", "bytes_total"),
    "scanning": ("rows_scanned",),
    "publishing": ("rows_total", "rows_published", "rows_rejected"),
    "published": ("rows_total", "rows_published", "rows_rejected", "batches"),
    "progress": ("rows_written", "rows_applied", "batches_applied", "batches_total", "rows_total"),
    "completed": ("rows_published", "rows_written", "rows_rejected", "duration_s", "tables",
                  "report_path", "mirror"),  # mirror: a mirror run's added/changed/retired/…
    "failed": ("stage", "reason"),
    # The worker's: the database's disk is full. Not an end: the worker retries the batch and
    # its next progress says it goes on. `reason`: one line naming the volume and what the
    # rows still to apply need (about `needed_bytes`); molstream.diskfull.
    "database_full": ("reason", "needed_bytes"),
    # The fetcher's: what the file downloaded is (sent before its first batch), or that it is
    # the one loaded before (`matched` says how; nothing else is published for the ingest).
    # `source` is the file's URL (a URL glob's match), redacted; the operator records them.
    "identified": ("source", "etag", "last_modified", "size", "sha256", "release"),
    "unchanged": ("source", "etag", "last_modified", "size", "sha256", "release", "matched"),
}
_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")


@dataclass(frozen=True)
class RowBatch:
    ingest_id: str
    seq: int
    mode: Mode
    rows: pa.Table
    fetch_started_at: float  # unix time the fetcher began, for the ingest's duration
    rows_total: int | None = None  # rows in the whole file (None from older fetchers)

    @property
    def key(self) -> bytes:
        return f"{self.ingest_id}/{self.seq}".encode()


@dataclass(frozen=True)
class EndOfIngest:
    ingest_id: str
    mode: Mode
    source: str
    batches: int
    rows_total: int
    rows_published: int
    rows_rejected: int
    fetch_started_at: float
    # (newer fields have defaults: an end marker of an older fetcher still decodes)
    release: str | None = None  # e.g. chembl_35 (spec.release): provenance
    mirror_key: str | None = None  # mirror mode: which earlier mirrors are "the previous one"
    source_identity: dict | None = None  # ETag, Last-Modified/MDTM, size, sha256, as known

    @property
    def key(self) -> bytes:
        return f"{self.ingest_id}/end".encode()


def encode_batch(batch: RowBatch) -> tuple[bytes, list[tuple[str, bytes]]]:
    sink = pa.BufferOutputStream()
    # Line numbers travel too: a row the database refuses is rejected with its line.
    with pa.ipc.new_stream(sink, batch.rows.schema, options=_IPC_OPTIONS) as writer:
        writer.write_table(batch.rows)
    headers = [("kind", ROWS.encode()), ("ingest", batch.ingest_id.encode()),
               ("seq", str(batch.seq).encode()), ("mode", batch.mode.value.encode()),
               ("t0", repr(batch.fetch_started_at).encode())]
    if batch.rows_total is not None:
        headers.append(("total", str(batch.rows_total).encode()))
    return sink.getvalue().to_pybytes(), headers


def encode_end(end: EndOfIngest) -> tuple[bytes, list[tuple[str, bytes]]]:
    body = {**end.__dict__, "mode": end.mode.value}
    return json.dumps(body).encode(), [("kind", END.encode()), ("ingest", end.ingest_id.encode())]


def decode(value: bytes, headers: list[tuple[str, bytes]]) -> RowBatch | EndOfIngest:
    """Decode a message of the rows topic; raises ValueError on anything else."""
    h = {k: v.decode() for k, v in headers or []}
    kind = h.get("kind")
    if kind == ROWS:
        with pa.ipc.open_stream(value) as reader:
            table = reader.read_all()
        return RowBatch(h["ingest"], int(h["seq"]), Mode.parse(h["mode"]), table, float(h["t0"]),
                        int(h["total"]) if "total" in h else None)
    if kind == END:
        body = json.loads(value)
        body["mode"] = Mode.parse(body["mode"])
        return EndOfIngest(**body)
    raise ValueError(f"not a molstream rows message (kind header {kind!r})")


def event(kind: str, ingest_id: str, **fields: Any) -> dict[str, Any]:
    expected = EVENT_FIELDS[kind]
    unknown = set(fields) - set(expected)
    if unknown:
        raise ValueError(f"event {kind!r} has no field(s) {sorted(unknown)}")
    return {"type": kind, "ingest_id": ingest_id, "ts": time.time(), **fields}


def to_json(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()
