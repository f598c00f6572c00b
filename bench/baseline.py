"""The baseline: the seed's design, re-implemented faithfully, on a small sample of the rows.

What the seed did (see ../shared/seed/000_486e88e3ebe56d0d.txt and DESIGN.md):
- the FTP client reads the CSV and sends one Kafka message per row (a JSON object), with
  kafka-python's default producer settings;
- one Kafka worker consumes the messages one by one (default consumer settings, auto commit)
  and, per row, in one SQLAlchemy ORM session: looks up each dimension object (phase, activity
  type, unit, relation, organism) first in Redis, where ORM objects are cached pickled, then in
  the database (`SELECT`), inserting it when missing; does the same for the molecule and the
  target (`SELECT` by key, then `INSERT`, or an update of changed attributes: UPSERT_RECORDS);
  selects the activity and inserts it; commits;
- SQLite opened the way the seed did: `create_engine("sqlite:///…")`, SQLite's defaults
  (rollback journal, synchronous=FULL, foreign keys off), one commit per row.
The tables are molstream's own (`molstream.db`), so the rows land in the same schema.
Rows/s is measured from the first message sent to the last row committed.
"""

from __future__ import annotations

import json
import pickle
import threading
import time
from pathlib import Path

import pyarrow as pa
import redis
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from molstream.db import (
    Activity,
    ActivityType,
    Molecule,
    Organism,
    Phase,
    Relation,
    Target,
    Unit,
    create_schema,
)
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session


class _Cache:
    """Redis holding pickled ORM objects, as the seed's worker did."""

    def __init__(self, url: str, prefix: str) -> None:
        self.redis = redis.Redis.from_url(url)
        self.prefix = prefix

    def get(self, session: Session, key: str):
        blob = self.redis.get(f"{self.prefix}:{key}")
        if blob is None:
            return None
        return session.merge(pickle.loads(blob), load=False)  # noqa: S301 - our own objects

    def put(self, key: str, obj) -> None:
        self.redis.set(f"{self.prefix}:{key}", pickle.dumps(obj))


def _dimension(session: Session, cache: _Cache, model, value):
    if value is None or value == "":
        return None
    key = f"{model.__tablename__}:{value}"
    obj = cache.get(session, key)
    if obj is None:
        obj = session.scalars(select(model).where(model.value == value)).first()
        if obj is None:
            obj = model(value=value)
            session.add(obj)
            session.flush()
        cache.put(key, obj)
    return obj


def _entity(session: Session, cache: _Cache, model, key_id: int, **values):
    key = f"{model.__tablename__}:{key_id}"
    obj = cache.get(session, key)
    if obj is None:
        obj = session.get(model, key_id)
    if obj is None:
        obj = model(id=key_id, **values)
        session.add(obj)
    else:  # UPSERT_RECORDS: bring the stored row up to date (the ORM writes only changes)
        for name, value in values.items():
            setattr(obj, name, value)
    session.flush()
    cache.put(key, obj)
    return obj


def _none(value: str) -> str | None:
    return value or None


def apply_row(session: Session, cache: _Cache, row: dict) -> None:
    phase_value = float(row["molecule_max_phase"]) if row["molecule_max_phase"] else None
    phase = _dimension(session, cache, Phase, phase_value)
    atype = _dimension(session, cache, ActivityType, row["activity_type"])
    unit = _dimension(session, cache, Unit, row["activity_units"])
    relation = _dimension(session, cache, Relation, row["activity_relation"])
    organism = _dimension(session, cache, Organism, row["target_organism"])
    molecule = _entity(session, cache, Molecule, int(row["molecule_id"]),
                       name=_none(row["molecule_name"]), phase_id=phase.id if phase else None,
                       structure=_none(row["molecule_structure"]),
                       inchi_key=_none(row["molecule_inchi_key"]))
    target = _entity(session, cache, Target, int(row["target_id"]), name=row["target_name"],
                     organism_id=organism.id if organism else None)
    activity_id = int(row["activity_id"])
    if session.get(Activity, activity_id) is None:
        session.add(Activity(
            id=activity_id, molecule_id=molecule.id, target_id=target.id,
            activity_type_id=atype.id, unit_id=unit.id if unit else None,
            relation_id=relation.id if relation else None,
            value=float(row["activity_value"]) if row["activity_value"] else None))
    session.commit()


def run(rows: pa.Table, *, bootstrap: str, redis_url: str, database: Path, topic: str,
        timeout_s: float = 900) -> dict:
    """Publish `rows` one message each and apply them the seed's way; rows/s."""
    for suffix in ("", "-journal"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    engine = create_engine(f"sqlite:///{database}")
    create_schema(engine)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()
    # Strings as the CSV had them (the seed's FTP client sent what vaex read).
    records = [{k: ("" if v is None else str(v) if not isinstance(v, float) else repr(v))
                for k, v in r.items()} for r in rows.to_pylist()]
    cache = _Cache(redis_url, f"baseline:{topic}")
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"{topic}-worker",
                             auto_offset_reset="earliest")
    consumer.poll(timeout_ms=1000)  # join the group before the clock starts

    def produce() -> None:
        producer = KafkaProducer(bootstrap_servers=bootstrap)
        for record in records:
            producer.send(topic, json.dumps(record).encode())
        producer.flush()
        producer.close()

    started = time.perf_counter()
    producer = threading.Thread(target=produce, name="baseline-producer", daemon=True)
    producer.start()
    done = 0
    deadline = time.monotonic() + timeout_s
    try:
        with Session(engine) as session:
            while done < len(records) and time.monotonic() < deadline:
                for message in consumer:
                    apply_row(session, cache, json.loads(message.value))
                    done += 1
                    if done == len(records):
                        break
        elapsed = time.perf_counter() - started
    finally:
        producer.join(timeout=60)
        consumer.close()
        engine.dispose()
    if done < len(records):
        raise RuntimeError(f"baseline applied only {done} of {len(records)} rows")
    return {"rows": done, "seconds": elapsed, "rows_per_s": done / elapsed,
            "ms_per_row": 1000 * elapsed / done}
