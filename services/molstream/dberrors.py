"""What a database error means for the batch that met it, told by its code, not its wording.

- TRANSIENT: the database is busy, restarting or unreachable; the same transaction will
  succeed later. Retried with backoff.
- ROWS: the database refused some value of the batch (a constraint, a value too long or out of
  range). Splitting the batch finds the rows; the others are applied.
- FATAL: anything else (a missing table, a permission, a bug). No row of the batch can be
  applied; its ingest ends `failed` and the partition moves on.

PostgreSQL errors are classed by SQLSTATE (psycopg's `sqlstate`, Appendix A of PostgreSQL's
manual), SQLite errors by their primary result code (`sqlite_errorcode`, sqlite.org/rescode.html).
"""

from __future__ import annotations

import enum
import sqlite3

from sqlalchemy.exc import DBAPIError, DisconnectionError, SQLAlchemyError


class Kind(enum.Enum):
    TRANSIENT = "transient"
    ROWS = "rows"
    FATAL = "fatal"


# SQLSTATE classes and codes (PostgreSQL manual, Appendix A).
_PG_TRANSIENT_CLASSES = {
    "08",  # connection exception
    "40",  # transaction rollback: serialization failure, deadlock detected
    "53",  # insufficient resources: disk full, out of memory, too many connections
    "57",  # operator intervention: admin/crash shutdown, cannot connect now
    "58",  # system error: I/O error
}
_PG_TRANSIENT_CODES = {
    "55P03",  # lock not available
    "25006",  # read-only SQL transaction: a primary turned standby (failover, switchover)
}
_PG_FATAL_CODES = {"57014"}  # statement timeout: the same batch would time out again
_PG_ROW_CLASSES = {
    "22",  # data exception: string data right truncation, numeric value out of range...
    "23",  # integrity constraint violation: not null, foreign key, unique, check
}

# SQLite primary result codes (the low 8 bits of an extended code).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_NOMEM, _SQLITE_IOERR = 5, 6, 7, 10
_SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_PROTOCOL = 13, 14, 15
_SQLITE_TOOBIG, _SQLITE_CONSTRAINT, _SQLITE_MISMATCH = 18, 19, 20
_SQLITE_TRANSIENT = {_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_NOMEM, _SQLITE_IOERR, _SQLITE_FULL,
                     _SQLITE_CANTOPEN, _SQLITE_PROTOCOL}
_SQLITE_ROWS = {_SQLITE_TOOBIG, _SQLITE_CONSTRAINT, _SQLITE_MISMATCH}


def classify(error: BaseException) -> Kind:
    if isinstance(error, DisconnectionError):
        return Kind.TRANSIENT
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return Kind.TRANSIENT
        error = error.orig if error.orig is not None else error
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        if sqlstate in _PG_FATAL_CODES:
            return Kind.FATAL
        if sqlstate[:2] in _PG_TRANSIENT_CLASSES or sqlstate in _PG_TRANSIENT_CODES:
            return Kind.TRANSIENT
        return Kind.ROWS if sqlstate[:2] in _PG_ROW_CLASSES else Kind.FATAL
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        if code is None:
            return Kind.FATAL
        primary = code & 0xFF
        if primary in _SQLITE_TRANSIENT:
            return Kind.TRANSIENT
        return Kind.ROWS if primary in _SQLITE_ROWS else Kind.FATAL
    if _is_psycopg_operational(error):
        return Kind.TRANSIENT  # no SQLSTATE: the server went away before answering
    return Kind.FATAL


# psycopg's prepared statements (named _pg3_N) meeting a server session that is not the one
# they were prepared in: a pooler in transaction mode (42P05 duplicate, 26000 missing).
_PREPARED_ELSEWHERE = {"42P05", "26000"}
_POOLER_HINT = ("; behind a pooler in transaction mode (PgBouncer)? add prepare_threshold=none "
                "to the database URL")


def describe(error: BaseException) -> str:
    """The database's own words, first line, with its code."""
    orig = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    text = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
    hint = _POOLER_HINT if code in _PREPARED_ELSEWHERE and '"_pg3_' in text else ""
    return f"{text} ({code}){hint}" if code else text


_SQLITE_CONSTRAINT_FOREIGNKEY = 787


def is_foreign_key(error: BaseException) -> bool:
    """A reference to a row the database does not hold (a foreign key, or molstream.pgschema's
    check: the same SQLSTATE)."""
    orig = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    return (getattr(orig, "sqlstate", None) == "23503"
            or getattr(orig, "sqlite_errorcode", None) == _SQLITE_CONSTRAINT_FOREIGNKEY)


def is_database_error(error: BaseException) -> bool:
    return isinstance(error, SQLAlchemyError | sqlite3.Error) or _is_psycopg_error(error)


def _is_psycopg_operational(error: BaseException) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - PostgreSQL support not installed
        return False
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)


def _is_psycopg_error(error: BaseException) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover
        return False
    return isinstance(error, psycopg.Error)
