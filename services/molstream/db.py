"""The database: eight normalized tables, the pipeline's own bookkeeping, and the data layer.

Molecules, targets and activities keep their ChEMBL natural keys (molregno, tid, activity_id)
as primary keys, so a row's foreign keys are known from the CSV itself; only the five dimension
tables (id + unique value) need look-ups, which `molstream.cache` keeps cheap. Every one of the
eight tables carries `created_on`, `last_modified_on` (kept by an update trigger, in SQLite and
PostgreSQL alike) and `active` (soft delete, applied through `soft_delete`/`restore` and honoured
by `select_active`).
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    Sequence,
    String,
    Table,
    Text,
    create_engine,
    event,
    false,
    inspect,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.schema import CreateColumn
from sqlalchemy.sql.functions import FunctionElement

from .contract import WIDTHS

log = logging.getLogger(__name__)


class utcnow(FunctionElement):  # noqa: N801 - reads like the SQL function it renders
    """Current time with sub-second precision, in each dialect's own spelling."""

    type = DateTime(timezone=True)
    inherit_cache = True


@compiles(utcnow, "sqlite")
def _utcnow_sqlite(element, compiler, **kw):  # noqa: ARG001
    return "(strftime('%Y-%m-%d %H:%M:%f', 'now'))"


@compiles(utcnow)
def _utcnow_default(element, compiler, **kw):  # noqa: ARG001
    return "CURRENT_TIMESTAMP"


class epoch_now(FunctionElement):  # noqa: N801 - reads like a SQL function
    """The database's clock in seconds since 1970: one clock for every worker, whatever their
    Pods' clocks say (molstream.completion's leases)."""

    type = Float()
    inherit_cache = True


@compiles(epoch_now, "sqlite")
def _epoch_now_sqlite(element, compiler, **kw):  # noqa: ARG001
    return "((julianday('now') - 2440587.5) * 86400.0)"


@compiles(epoch_now, "postgresql")
def _epoch_now_postgresql(element, compiler, **kw):  # noqa: ARG001
    return "(extract(epoch FROM clock_timestamp())::float8)"


# The natural keys of molecules, targets and activities (ChEMBL's molregno, tid, activity_id).
# On SQLite, INTEGER (still 64 bits there) makes the key the table's rowid: without it, SQLite
# keeps a hidden rowid plus a separate unique index on the key, one more B-tree to update on
# every insert and to search on every look-up and foreign-key check.
NaturalKey = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    })


class _Audited:
    created_on: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=utcnow())
    last_modified_on: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=utcnow())
    active: Mapped[bool] = mapped_column(Boolean, server_default=true())


class Phase(_Audited, Base):
    __tablename__ = "phase"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[float] = mapped_column(Float, unique=True)


class ActivityType(_Audited, Base):
    __tablename__ = "activity_type"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[str] = mapped_column(String(WIDTHS["activity_type"]), unique=True)


class Unit(_Audited, Base):
    __tablename__ = "unit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[str] = mapped_column(String(WIDTHS["activity_units"]), unique=True)


class Relation(_Audited, Base):
    __tablename__ = "relation"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[str] = mapped_column(String(WIDTHS["activity_relation"]), unique=True)


class Organism(_Audited, Base):
    __tablename__ = "organism"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[str] = mapped_column(String(WIDTHS["target_organism"]), unique=True)


class Molecule(_Audited, Base):
    __tablename__ = "molecule"
    id: Mapped[int] = mapped_column(NaturalKey, primary_key=True, autoincrement=False)  # molregno
    name: Mapped[str | None] = mapped_column(String(WIDTHS["molecule_name"]))
    phase_id: Mapped[int | None] = mapped_column(ForeignKey("phase.id"))
    structure: Mapped[str | None] = mapped_column(String(WIDTHS["molecule_structure"]))
    inchi_key: Mapped[str | None] = mapped_column(String(WIDTHS["molecule_inchi_key"]))


class Target(_Audited, Base):
    __tablename__ = "target"
    id: Mapped[int] = mapped_column(NaturalKey, primary_key=True, autoincrement=False)  # tid
    name: Mapped[str] = mapped_column(String(WIDTHS["target_name"]))
    organism_id: Mapped[int | None] = mapped_column(ForeignKey("organism.id"))


class Activity(_Audited, Base):
    __tablename__ = "activity"
    id: Mapped[int] = mapped_column(NaturalKey, primary_key=True, autoincrement=False)
    molecule_id: Mapped[int] = mapped_column(ForeignKey("molecule.id"), index=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("target.id"), index=True)
    activity_type_id: Mapped[int] = mapped_column(ForeignKey("activity_type.id"))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id"))
    relation_id: Mapped[int | None] = mapped_column(ForeignKey("relation.id"))
    value: Mapped[float | None] = mapped_column(Float)
    # Provenance: the ingest (ingest_run.number) that last inserted or changed the row. Not a
    # foreign key: nothing to check per row, and a run's record may be pruned.
    written_by: Mapped[int | None] = mapped_column(Integer)
    # The mirror run (ingest_run.number) that soft-deleted the row because its release lacked
    # it; NULL for a row a person soft-deleted (molstream.mirror).
    retired_by: Mapped[int | None] = mapped_column(Integer)


# The rows a person soft-deleted, a few or none: found at once when a file brings them again
# (molstream.apply), whatever the size of the table.
INACTIVE_INDEXES = tuple(
    Index(f"ix_{t.name}_inactive", t.c.id, sqlite_where=t.c.active == false(),
          postgresql_where=t.c.active == false()).name
    for t in (Molecule.__table__, Target.__table__, Activity.__table__))

# On PostgreSQL the activity table's references are checked once per statement, not by a
# foreign key's trigger per row and key (molstream.pgschema); elsewhere they are foreign keys.
for _constraint in Activity.__table__.foreign_key_constraints:
    _constraint.ddl_if(callable_=lambda _ddl, _target, _bind, dialect, **_: (
        dialect.name != "postgresql"))


class IngestRun(Base):
    """One ingest of one file, as the worker sees it; `report` is set when it completes."""

    __tablename__ = "ingest_run"
    id: Mapped[str] = mapped_column(String(300), primary_key=True)
    # A small number for the run, which each activity carries (activity.written_by): from a
    # sequence on PostgreSQL, from the one writer (max + 1) on SQLite (which has none).
    number: Mapped[int | None] = mapped_column(Integer, Sequence("ingest_run_number_seq"),
                                               unique=True)
    source: Mapped[str | None] = mapped_column(Text)  # the URL, redacted
    release: Mapped[str | None] = mapped_column(String(200))  # e.g. chembl_35 (spec.release)
    source_identity: Mapped[dict | None] = mapped_column(JSON)  # ETag, MDTM, size, sha256
    mode: Mapped[str] = mapped_column(String(20))
    # mirror mode: the source it mirrors, and the activity ids its file held (a serialized
    # roaring bitmap), set when it completes
    mirror_key: Mapped[str | None] = mapped_column(Text)
    mirror_ids: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20), server_default="running")
    started_on: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=utcnow())
    fetch_started_at: Mapped[float | None] = mapped_column(Float)  # unix time, from the fetcher
    finished_on: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    batches_expected: Mapped[int | None] = mapped_column(Integer)
    batches_applied: Mapped[int] = mapped_column(Integer, server_default="0")
    rows_total: Mapped[int | None] = mapped_column(BigInteger)
    rows_published: Mapped[int | None] = mapped_column(BigInteger)
    rows_rejected: Mapped[int | None] = mapped_column(BigInteger)
    rows_applied: Mapped[int] = mapped_column(BigInteger, server_default="0")
    rows_written: Mapped[int] = mapped_column(BigInteger, server_default="0")
    report: Mapped[dict | None] = mapped_column(JSON)
    failure: Mapped[str | None] = mapped_column(Text)  # why the worker failed it
    # The announcement (`completed` or `failed` event) is claimed by one worker at a time
    # (molstream.completion): who claimed it and when (unix time); `announced` once it is out.
    announced_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[float | None] = mapped_column(Float)
    announced: Mapped[bool] = mapped_column(Boolean, server_default="0")


class AppliedBatch(Base):
    """The batches already applied: a redelivered batch finds itself here and changes nothing."""

    __tablename__ = "applied_batch"
    ingest_id: Mapped[str] = mapped_column(ForeignKey("ingest_run.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    rows: Mapped[int] = mapped_column(Integer)
    written: Mapped[dict] = mapped_column(JSON)  # rows written per table by this batch
    # rows of the batch that are soft-deleted in the database and stay so, per table
    inactive: Mapped[dict | None] = mapped_column(JSON)
    rejected: Mapped[int] = mapped_column(Integer, server_default="0")  # refused by the database
    # mirror mode: activities of the batch a mirror had retired, active again; activities it
    # inserted (the rest of those written were changed); its activity ids (a roaring bitmap,
    # until the ingest completes)
    restored: Mapped[int | None] = mapped_column(Integer)
    inserted: Mapped[int | None] = mapped_column(Integer)
    ids: Mapped[bytes | None] = mapped_column(LargeBinary)
    applied_on: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=utcnow())


class AppliedPart(Base):
    """On PostgreSQL a batch's dimension values, molecules and targets commit in a short
    transaction of their own, ahead of its activities (molstream.apply): what that transaction
    wrote, until the batch's own record (`applied_batch`, in the activities' transaction) takes
    it over. A batch retried after that point finds its part here and counts nothing twice."""

    __tablename__ = "applied_part"
    ingest_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    written: Mapped[dict] = mapped_column(JSON)
    inactive: Mapped[dict | None] = mapped_column(JSON)


class Meta(Base):
    """Key/value facts about this database, e.g. the instance id that namespaces the cache."""

    __tablename__ = "molstream_meta"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


DIMENSIONS: dict[str, Table] = {
    m.__tablename__: m.__table__ for m in (Phase, ActivityType, Unit, Relation, Organism)
}
DATA_TABLES: dict[str, Table] = {
    **DIMENSIONS, **{m.__tablename__: m.__table__ for m in (Molecule, Target, Activity)}
}

_SCHEMA_LOCK = 0x6D6F6C73  # "mols": the advisory lock key for schema creation
# The longest a change of the schema waits for a table's lock before it lets go (and tries
# again later): whoever wants the table after it waits at most this long.
LOCK_TIMEOUT_S = 2.0
_SQLITE_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS trg_{t}_last_modified AFTER UPDATE ON {t}
FOR EACH ROW WHEN NEW.last_modified_on IS OLD.last_modified_on
BEGIN
  UPDATE {t} SET last_modified_on = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE id = NEW.id;
END
"""


def normalize_url(url: str) -> str:
    """Accept plain postgresql:// URLs: the installed driver is psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _psycopg_options(url: str) -> tuple[str, dict]:
    """psycopg's `prepare_threshold` taken out of the URL (libpq refuses it as a connection
    parameter) and given to psycopg: `prepare_threshold=none` turns server-side prepared
    statements off, as a pooler in transaction mode needs (a statement prepared in one server
    session is not there in the next: PgBouncer before 1.22, or without max_prepared_statements).
    TLS needs nothing of ours: libpq reads sslmode/sslrootcert from the URL or PGSSLMODE and
    PGSSLROOTCERT from the environment."""
    parsed = make_url(url)
    if "prepare_threshold" not in parsed.query:
        return url, {}
    value = parsed.query["prepare_threshold"]
    value = value[-1] if isinstance(value, tuple) else value
    if value.strip().lower() in ("none", ""):
        threshold = None
    elif value.strip().isdigit():
        threshold = int(value)
    else:
        raise ArgumentError(f"prepare_threshold={value!r} in the database URL: a number, "
                            "or none")
    rest = parsed.difference_update_query(["prepare_threshold"])
    return rest.render_as_string(hide_password=False), {"prepare_threshold": threshold}


def make_engine(url: str, *, busy_timeout_s: float = 60.0) -> Engine:
    url = normalize_url(url)
    if not url.startswith("sqlite"):
        url, connect_args = _psycopg_options(url)
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    engine = create_engine(url, connect_args={"timeout": busy_timeout_s})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable at each WAL checkpoint
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA cache_size=-32768")  # 32 MiB page cache: no faster at 64
        # Checkpoint every 64 MiB of WAL rather than SQLite's 4 MiB: a bulk ingest rewrites the
        # same index pages in every transaction, and each checkpoint copies them to the
        # database file again. The WAL file is cut back to that size after a checkpoint.
        cursor.execute("PRAGMA wal_autocheckpoint=16384")
        cursor.execute("PRAGMA journal_size_limit=67108864")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn):
        # Deferred BEGIN: readers never take the write lock (WAL lets them run beside the
        # writer). Every write transaction of molstream starts with a write statement, so it
        # takes the lock first thing and waits in busy_timeout instead of failing on upgrade;
        # one that reads first asks for the lock at BEGIN (execution option `write_lock`).
        if conn.get_execution_options().get("write_lock"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def create_schema(engine: Engine) -> str:
    """Create tables and triggers if missing; return this database's instance id.

    On a database that is up to date it only reads (the catalog, and molstream_meta): no lock
    that a reader's long transaction would hold up, and nobody queues behind. When something
    is missing, its DDL waits for its locks at most LOCK_TIMEOUT_S at a time, then lets go
    (the writers and readers that queued behind it go on) and tries again."""
    delay = 1.0
    while True:
        try:
            return _create_schema(engine)
        except Exception as e:  # SQLAlchemy's wrapper, or psycopg's own (pgschema's cursor)
            cause = getattr(e, "orig", None) or e
            if getattr(cause, "sqlstate", None) != "55P03":  # lock_not_available
                raise
            log.warning("the schema needs a change and a table it locks is in use (%s); "
                        "trying again in %.0f s", str(cause).strip().splitlines()[0], delay)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)


def _create_schema(engine: Engine) -> str:
    # It reads the schema before it writes: on SQLite, lock first (see make_engine).
    with engine.execution_options(write_lock=True).begin() as conn:
        if engine.dialect.name == "postgresql":
            # Workers starting together would race to create the same tables.
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(LOCK_TIMEOUT_S * 1000)}ms'")
        Base.metadata.create_all(conn)
        _add_missing_columns(conn)
        if engine.dialect.name == "postgresql":  # the sequences of columns added since
            for table in Base.metadata.sorted_tables:
                for column in table.columns:
                    if isinstance(column.default, Sequence):
                        column.default.create(conn, checkfirst=True)
        # create_all leaves tables that exist alone, indexes included: bring back any index a
        # worker dropped for a large ingest and did not live to rebuild (molstream.apply).
        for table in Base.metadata.sorted_tables:
            for index in table.indexes:
                if not _has_index(conn, index):
                    index.create(conn)
        if engine.dialect.name == "postgresql":
            from . import pgschema  # (it reads this module's model)

            pgschema.install(conn, list(DATA_TABLES))
            _widen_columns(conn)
        else:
            for name in DATA_TABLES:
                conn.exec_driver_sql(_SQLITE_TRIGGER.format(t=name))
        return _instance_id(conn)


def _add_missing_columns(conn: Connection) -> None:
    """Add the columns a database made by an older molstream lacks (create_all leaves existing
    tables alone). Every column added since the first release is nullable or has a default."""
    for table in Base.metadata.sorted_tables:
        have = _column_names(conn, table.name)
        for column in table.columns:
            # (a required column without a default cannot be added to rows that exist)
            if column.name not in have and (column.nullable or column.server_default):
                ddl = str(CreateColumn(column).compile(dialect=conn.dialect))
                conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {ddl}")


# On PostgreSQL, what exists is read from the catalog's rows alone: SQLAlchemy's reflection
# (get_columns, and has_index behind create(checkfirst=True)) calls pg_get_serial_sequence and
# pg_get_indexdef, which lock the table: a worker starting on an up-to-date schema waited for
# anyone holding ACCESS EXCLUSIVE on activity (and DDL queued behind it).
def _has_index(conn: Connection, index: Index) -> bool:
    if conn.dialect.name != "postgresql":
        return inspect(conn).has_index(index.table.name, index.name)
    return conn.execute(text("SELECT to_regclass(:i) IS NOT NULL"),
                        {"i": index.name}).scalar_one()


def _column_names(conn: Connection, table: str) -> set[str]:
    if conn.dialect.name != "postgresql":
        return {c["name"] for c in inspect(conn).get_columns(table)}
    return set(conn.execute(text(
        "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass(:t)"
        " AND attnum > 0 AND NOT attisdropped"), {"t": table}).scalars())


def _widen_columns(conn: Connection) -> None:
    """Bring a PostgreSQL database made by an older molstream, whose text columns were
    narrower than ChEMBL's (activity_type.value was varchar(200)), to today's widths. Widening
    a varchar is a catalog change in PostgreSQL: no table rewrite. (SQLite ignores widths.)"""
    wanted = {(t.name, c.name): c.type.length for t in DATA_TABLES.values() for c in t.columns
              if isinstance(c.type, String) and c.type.length}
    # (in the schema where the session finds the tables: not always current_schema())
    found = {(t, c): n for t, c, n in conn.exec_driver_sql(
        "SELECT table_name, column_name, character_maximum_length FROM information_schema.columns"
        " WHERE table_schema = (SELECT n.nspname FROM pg_class c JOIN pg_namespace n"
        " ON n.oid = c.relnamespace WHERE c.oid = to_regclass('activity'))"
        " AND data_type = 'character varying'")}
    for (table, column), width in wanted.items():
        if found.get((table, column), width) < width:
            conn.exec_driver_sql(
                f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE varchar({int(width)})')


def _instance_id(conn: Connection) -> str:
    meta = Meta.__table__
    found = conn.execute(select(meta.c.value).where(meta.c.key == "instance_id")).scalar()
    if found:
        return found
    conn.execute(meta.insert().values(key="instance_id", value=uuid.uuid4().hex))
    return conn.execute(select(meta.c.value).where(meta.c.key == "instance_id")).scalar_one()


# -- the data layer's soft delete ------------------------------------------------------------


def select_active(table: Table) -> Select:
    """What readers should query: rows not soft-deleted."""
    return select(table).where(table.c.active == true())


def soft_delete(conn: Connection, table: Table, ids: list[int]) -> int:
    """Soft-delete the rows of `ids` that are active; how many changed. A row already inactive
    is left alone (its `last_modified_on` too). A file that brings it again updates its values
    and leaves it inactive (molstream.apply)."""
    if "retired_by" in table.c:  # a person's, now: no file brings it back (molstream.mirror)
        return conn.execute(update(table).where(
            table.c.id.in_(ids), or_(table.c.active == true(), table.c.retired_by.is_not(None)),
        ).values(active=False, retired_by=None)).rowcount
    result = conn.execute(update(table).where(
        table.c.id.in_(ids), table.c.active == true()).values(active=False))
    return result.rowcount


def restore(conn: Connection, table: Table, ids: list[int]) -> int:
    """Make the rows of `ids` that are soft-deleted active again; how many changed."""
    values = {"retired_by": None} if "retired_by" in table.c else {}
    result = conn.execute(update(table).where(
        table.c.id.in_(ids), table.c.active == false()).values(active=True, **values))
    return result.rowcount
