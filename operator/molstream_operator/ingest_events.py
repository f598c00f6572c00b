"""The events the fetcher and the worker publish on ``<prefix>.events``, parsed and checked.

Each Kafka record: key = ingest id (UTF-8), value = a JSON object with ``type``, ``ingest_id``,
``ts`` (unix seconds) and the fields of its type, as `molstream.messages` defines them (the
fetcher and the worker build them there; this module only reads them defensively).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

from molstream.messages import EVENT_FIELDS

__all__ = ["EVENT_TYPES", "IngestEvent", "MalformedEvent", "parse_event"]

EVENT_TYPES = frozenset(EVENT_FIELDS)


class MalformedEvent(ValueError):
    """A record that is not an ingest event (skipped, with a warning)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class IngestEvent:
    type: str
    ingest_id: str
    ts: float
    data: Mapping[str, Any]

    def int_field(self, key: str) -> int | None:
        """An integer field, None when missing, null or not a non-negative integer."""
        value = self.data.get(key)
        if isinstance(value, bool):
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and value >= 0:
            return value
        return None

    def str_field(self, key: str) -> str | None:
        value = self.data.get(key)
        return value if isinstance(value, str) else None


def parse_event(key: bytes | None, value: bytes | None) -> IngestEvent:
    """Parse one record of the events topic; raise ``MalformedEvent`` when it is not one."""
    if value is None:
        raise MalformedEvent("empty record")
    try:
        data = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedEvent(f"not UTF-8 JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise MalformedEvent("not a JSON object")
    kind = data.get("type")
    if kind not in EVENT_TYPES:
        raise MalformedEvent(f"unknown type {str(kind)[:40]!r}")
    ingest = data.get("ingest_id")
    if not isinstance(ingest, str) or not ingest:
        try:
            ingest = key.decode("utf-8") if key else ""
        except UnicodeDecodeError:
            ingest = ""
    if not ingest:
        raise MalformedEvent("no ingest_id")
    ts = data.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise MalformedEvent("no ts")
    return IngestEvent(type=kind, ingest_id=ingest, ts=float(ts), data=data)
