"""What the database must hold after ingesting a CSV file, computed independently of molstream
(Python's csv module, no Arrow, no vaex), and a snapshot of what it does hold, in the same shape."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

from sqlalchemy import Engine, text


def _num(v: str) -> float | None:
    return float(v) if v != "" else None


def _opt(v: str) -> str | None:
    return v if v != "" else None


def expected_tables(path: Path, *, skip_ids: set[int] = frozenset()) -> dict[str, object]:
    opener = gzip.open if path.suffix == ".gz" else open
    molecules, targets, activities = {}, {}, {}
    with opener(path, "rt", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            aid = int(row["activity_id"])
            if aid in skip_ids or aid in activities:
                continue
            m, t = int(row["molecule_id"]), int(row["target_id"])
            molecules[m] = (_opt(row["molecule_name"]), _num(row["molecule_max_phase"]),
                            _opt(row["molecule_structure"]), _opt(row["molecule_inchi_key"]))
            targets[t] = (row["target_name"], _opt(row["target_organism"]))
            activities[aid] = (m, t, row["activity_type"], _opt(row["activity_units"]),
                               _opt(row["activity_relation"]), _num(row["activity_value"]))
    return {
        "phase": {v[1] for v in molecules.values()} - {None},
        "activity_type": {a[2] for a in activities.values()},
        "unit": {a[3] for a in activities.values()} - {None},
        "relation": {a[4] for a in activities.values()} - {None},
        "organism": {t[1] for t in targets.values()} - {None},
        "molecule": molecules,
        "target": targets,
        "activity": activities,
    }


def actual_tables(engine: Engine) -> dict[str, object]:
    with engine.connect() as conn:
        def q(sql: str):
            return conn.execute(text(sql)).all()
        dims = {name: [r[0] for r in q(f"SELECT value FROM {name}")]  # noqa: S608 - constants
                for name in ("phase", "activity_type", "unit", "relation", "organism")}
        for name, values in dims.items():
            assert len(values) == len(set(values)), f"duplicate values in {name}"
        molecules = {r[0]: tuple(r[1:]) for r in q(
            "SELECT m.id, m.name, p.value, m.structure, m.inchi_key FROM molecule m "
            "LEFT JOIN phase p ON p.id = m.phase_id")}
        targets = {r[0]: tuple(r[1:]) for r in q(
            "SELECT t.id, t.name, o.value FROM target t "
            "LEFT JOIN organism o ON o.id = t.organism_id")}
        activities = {r[0]: tuple(r[1:]) for r in q(
            "SELECT a.id, a.molecule_id, a.target_id, ty.value, u.value, r.value, a.value "
            "FROM activity a JOIN activity_type ty ON ty.id = a.activity_type_id "
            "LEFT JOIN unit u ON u.id = a.unit_id LEFT JOIN relation r ON r.id = a.relation_id")}
        counts = {name: q(f"SELECT count(*) FROM {name}")[0][0]  # noqa: S608 - constants
                  for name in ("molecule", "target", "activity")}
    # Every row of a table appears once in the dicts above: no duplicates hide behind a key.
    assert counts == {"molecule": len(molecules), "target": len(targets),
                      "activity": len(activities)}
    return {**{k: set(v) for k, v in dims.items()}, "molecule": molecules, "target": targets,
            "activity": activities}


def snapshot(engine: Engine) -> dict[str, list[tuple]]:
    """Every column of every table, timestamps included, for before/after comparisons."""
    tables = ("phase", "activity_type", "unit", "relation", "organism", "molecule", "target",
              "activity")
    with engine.connect() as conn:
        return {t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY id"))]  # noqa: S608
                for t in tables}
