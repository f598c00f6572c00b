"""The report of a completed ingest: rows per table, rows written and rejected, duration.

Written as a CSV file (`<reports_dir>/<ingest id>.csv`, one `section,name,value` row per
figure) and carried, with the same figures, by the `completed` event.
"""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path

from sqlalchemy import Engine, false, func, select
from sqlalchemy.engine import Connection

from .applied import KEYED
from .db import DATA_TABLES, AppliedBatch, IngestRun
from .messages import TABLES

_RUN = IngestRun.__table__
_APPLIED = AppliedBatch.__table__


def build(conn: Connection | Engine, ingest_id: str, *, mirror: dict | None = None) -> dict:
    """The ingest's figures, from its run and the record of its batches (what the batches
    wrote, applied and the database refused add up there, one row per batch); `mirror`: what
    a mirror run's completion did (molstream.mirror)."""
    if isinstance(conn, Engine):
        with conn.connect() as c:
            return build(c, ingest_id, mirror=mirror)
    run = conn.execute(select(_RUN).where(_RUN.c.id == ingest_id)).mappings().one()
    written = dict.fromkeys(TABLES, 0)
    inactive = dict.fromkeys(KEYED, 0)
    batches = rows_applied = refused = 0
    for per_batch, kept, rows, rejected in conn.execute(
            select(_APPLIED.c.written, _APPLIED.c.inactive, _APPLIED.c.rows, _APPLIED.c.rejected)
            .where(_APPLIED.c.ingest_id == ingest_id)):
        for table, n in per_batch.items():
            written[table] += n
        for table, n in (kept or {}).items():
            inactive[table] += n
        batches += 1
        rows_applied += rows
        refused += rejected or 0
    totals = {name: conn.execute(select(func.count()).select_from(table)
                                 .where(table.c.active)).scalar_one()
              for name, table in DATA_TABLES.items()}
    # (through the partial index of soft-deleted rows: a few rows, or none)
    inactive_totals = {name: conn.execute(select(func.count()).select_from(
        DATA_TABLES[name]).where(DATA_TABLES[name].c.active == false())).scalar_one()
        for name in KEYED}
    started = run["fetch_started_at"] or time.time()
    extra = {}
    if mirror is not None:  # the activities a release added, changed, dropped, brought back
        extra["mirror"] = {"previous": mirror["previous"], "added": mirror["added"],
                           "changed": written["activity"] - mirror["added"],
                           "retired": mirror["retired"], "restored": mirror["restored"],
                           # what it would have retired, had it not held back, and why
                           "held_back": mirror["held_back"],
                           **({"held_back_reason": mirror["held_back_reason"]}
                              if mirror.get("held_back_reason") else {})}
    return {
        "ingest_id": ingest_id,
        "source": run["source"],
        "mode": run["mode"],
        "rows_total": run["rows_total"],
        "rows_published": run["rows_published"],
        "rows_applied": rows_applied,
        "rows_written": written["activity"],
        # the fetcher's rejections (the contract) and the database's
        "rows_rejected": (run["rows_rejected"] or 0) + refused,
        "rows_refused_by_database": refused,
        "batches": batches,
        "duration_s": round(time.time() - started, 3),
        # rows inserted or changed, all active; soft-deleted rows the file changed (they stay
        # so) are counted apart, in tables_inactive
        "tables": written,
        "tables_inactive": inactive,
        "table_totals": {name: totals[name] for name in TABLES},
        "table_inactive_totals": inactive_totals,
        # provenance: which release and which file (molstream.db.IngestRun)
        "release": run["release"],
        "source_identity": run["source_identity"],
        **extra,
    }


def write_csv(report: dict, reports_dir: Path) -> Path:
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"{re.sub(r'[^A-Za-z0-9._-]', '_', report['ingest_id'])}.csv"
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["section", "name", "value"])
        for key in ("ingest_id", "source", "release", "mode", "rows_total", "rows_published",
                    "rows_written", "rows_rejected", "rows_refused_by_database", "batches",
                    "duration_s"):
            out.writerow(["summary", key, _cell(report.get(key))])
        for table in TABLES:
            out.writerow(["rows_written", table, report["tables"][table]])
        for table in KEYED:
            out.writerow(["rows_kept_inactive", table,
                          report.get("tables_inactive", {}).get(table, 0)])
        for table in TABLES:
            out.writerow(["rows_in_table", table, report["table_totals"][table]])
        for table in KEYED:
            out.writerow(["rows_inactive_in_table", table,
                          report.get("table_inactive_totals", {}).get(table, 0)])
        for key, value in (report.get("mirror") or {}).items():
            out.writerow(["mirror", key, _cell(value)])
    tmp.replace(path)
    return path


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    # A report is opened in spreadsheets: never let a value start like a formula (OWASP's list:
    # = + - @, and tab and carriage return, which spreadsheets skip before a formula).
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in _FORMULA_START and not _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def format_table(report: dict) -> str:
    """The report as a small text table, for terminals."""
    lines = [f"ingest {report['ingest_id']}  ({report['mode']}, {report['duration_s']:.1f}s)",
             f"{'table':<14}{'written':>12}{'in table':>12}"]
    for table in TABLES:
        lines.append(f"{table:<14}{report['tables'][table]:>12,}"
                     f"{report['table_totals'][table]:>12,}")
    kept = {t: n for t, n in report.get("tables_inactive", {}).items() if n}
    if kept:
        lines.append("kept inactive (soft-deleted, values updated): " + ", ".join(
            f"{t} {n:,}" for t, n in kept.items()))
    lines.append(f"rows: {report['rows_total'] or 0:,} in file, {report['rows_published'] or 0:,}"
                 f" published, {report['rows_written']:,} written, "
                 f"{report['rows_rejected'] or 0:,} rejected")
    return "\n".join(lines)
