"""PostgreSQL's own parts of the schema: the update trigger's function, and the activity
table's references checked once per statement instead of once per row.

A declared foreign key costs PostgreSQL one trigger call per row and key: a query through SPI
that locks the parent row (`FOR KEY SHARE`). Five keys per activity capped any load into the
activity table at ~20,000 rows/s on two cores, whatever the worker did (bench/README.md). Here
the same rule is kept with set-based statements:

- after each statement that inserts or updates activities, one trigger takes the statement's
  rows (a transition table), locks the parents they name with `FOR KEY SHARE`, as a foreign key
  does, then checks that every one exists; a missing one raises `foreign_key_violation`
  (SQLSTATE 23503) naming the column and the value;
- before a parent row is deleted, or its id changed, a row trigger refuses it while an activity
  refers to it (`ON DELETE NO ACTION`); TRUNCATE of a parent is refused while activities exist.

Locking before checking closes the race a foreign key closes: a parent deleted by a transaction
still running makes the lock wait for it, and the check that follows (a new snapshot in READ
COMMITTED) sees the outcome. What a trigger cannot do is look past its transaction's snapshot,
as a foreign key's own check does: in a REPEATABLE READ or SERIALIZABLE transaction it would
miss an activity committed after the snapshot. So there, deleting, renumbering or truncating a
parent is refused with `serialization_failure` (40001), saying to do it in READ COMMITTED.

Every name is schema-qualified and every function pins `search_path`: a session's temporary
table called `molecule` (an analyst's, a script's) never stands in for molstream's.

The other references (molecule → phase, target → organism) stay declared foreign keys: only
the molecules and targets that change are written, a few percent of the rows.

`install` reads the catalog first and changes it only when something is missing or differs:
creating a trigger locks its table against every writer (readers go on), so it would wait for
a long write, and the writers after it would queue behind it.
"""

from __future__ import annotations

import hashlib
import json
import logging

from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from .db import Activity, Meta

log = logging.getLogger(__name__)

# (column of activity, parent table), from the model's foreign keys (db.py), which create
# real constraints on other databases (SQLite).
REFERENCES: tuple[tuple[str, str], ...] = tuple(sorted(
    (fk.parent.name, fk.column.table.name) for fk in Activity.__table__.foreign_keys))

# {s} is the schema, quoted (quote_ident(current_schema()) of the installing session).
TOUCH_FUNCTION = """
CREATE OR REPLACE FUNCTION {s}.molstream_touch_last_modified() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  NEW.last_modified_on := clock_timestamp();
  RETURN NEW;
END $$
"""
TOUCH_TRIGGER = """
CREATE OR REPLACE TRIGGER trg_{t}_last_modified BEFORE UPDATE ON {s}.{t}
FOR EACH ROW EXECUTE FUNCTION {s}.molstream_touch_last_modified()
"""


def _check_function() -> str:
    # Every name below comes from REFERENCES (our own model), none from input. For each
    # reference: the distinct ids the statement's rows name (one pass over them, where a
    # row-by-row test probed the parent once per row: 96k against 136k rows/s), the parents
    # found among them locked, and their count compared; the row to blame is looked for only
    # when one is missing. (new_rows is the transition table: no schema, no search_path.)
    checks = "\n".join(f"""
  ids := ARRAY(SELECT DISTINCT {column} FROM new_rows WHERE {column} IS NOT NULL);
  SELECT count(*) INTO found FROM (
    SELECT 1 FROM {{s}}.{parent} p WHERE p.id = ANY(ids) ORDER BY p.id FOR KEY SHARE) locked;
  IF found < cardinality(ids) THEN
    SELECT n.id, n.{column} INTO bad_id, bad_value FROM new_rows n
    WHERE n.{column} IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM {{s}}.{parent} p WHERE p.id = n.{column})
    LIMIT 1;
    RAISE foreign_key_violation USING MESSAGE = format(
      'activity %s: {column} = %s is not present in table "{parent}"', bad_id, bad_value),
      TABLE = 'activity', COLUMN = '{column}';
  END IF;""" for column, parent in REFERENCES)  # noqa: S608
    return """
CREATE OR REPLACE FUNCTION {s}.molstream_activity_references() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE ids bigint[]; found bigint; bad_id bigint; bad_value bigint;
BEGIN""" + checks + """
  RETURN NULL;
END $$
"""


CHECK_FUNCTION = _check_function()
CHECK_TRIGGERS = (
    "CREATE OR REPLACE TRIGGER trg_activity_references_insert AFTER INSERT ON {s}.activity"
    " REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION {s}.molstream_activity_references()",
    "CREATE OR REPLACE TRIGGER trg_activity_references_update AFTER UPDATE ON {s}.activity"
    " REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION {s}.molstream_activity_references()",
)
# A parent row referred to by an activity: no delete, no new id. TG_ARGV[0] is the column of
# activity that refers to the trigger's table (one of REFERENCES); activity lives in the
# trigger's own schema.
GUARD_FUNCTION = """
CREATE OR REPLACE FUNCTION {s}.molstream_referenced_by_activity() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE referring bigint;
BEGIN
  IF TG_OP = 'UPDATE' THEN
    IF NEW.id IS NOT DISTINCT FROM OLD.id THEN RETURN NEW; END IF;
  END IF;
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE serialization_failure USING MESSAGE = format(
      'cannot %s %s.%s in a %s transaction: activities committed after its snapshot may'
      ' refer to it, and this check sees only the snapshot', lower(TG_OP), TG_TABLE_SCHEMA,
      TG_TABLE_NAME, upper(current_setting('transaction_isolation'))),
      HINT = 'Do it in a READ COMMITTED transaction: a foreign key''s own check is the only'
             ' one that looks past a snapshot, and these references are checked by triggers'
             ' (molstream.pgschema).';
  END IF;
  IF TG_OP = 'TRUNCATE' THEN
    EXECUTE format('SELECT 1 FROM %I.activity LIMIT 1', TG_TABLE_SCHEMA) INTO referring;
    IF referring IS NOT NULL THEN
      RAISE foreign_key_violation USING MESSAGE = format(
        'cannot truncate table "%s": table "activity" refers to it', TG_TABLE_NAME);
    END IF;
    RETURN NULL;
  END IF;
  EXECUTE format('SELECT id FROM %I.activity WHERE %I = $1 LIMIT 1', TG_TABLE_SCHEMA,
                 TG_ARGV[0]) INTO referring USING OLD.id;
  IF referring IS NOT NULL THEN
    RAISE foreign_key_violation USING MESSAGE = format(
      '%s %s is still referenced from table "activity" (activity %s); molstream deletes'
      ' rows softly: set active = false', TG_TABLE_NAME, OLD.id, referring);
  END IF;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END $$
"""
GUARD_TRIGGERS = (
    "CREATE OR REPLACE TRIGGER trg_{t}_referenced BEFORE DELETE OR UPDATE OF id ON {s}.{t}"
    " FOR EACH ROW EXECUTE FUNCTION {s}.molstream_referenced_by_activity('{c}')",
    "CREATE OR REPLACE TRIGGER trg_{t}_referenced_truncate BEFORE TRUNCATE ON {s}.{t}"
    " FOR EACH STATEMENT EXECUTE FUNCTION {s}.molstream_referenced_by_activity('{c}')",
)
# Declared by molstream before the checks above replaced them (their names follow db.py's
# naming convention): dropped from databases made then.
OLD_FOREIGN_KEYS = tuple(f"fk_activity_{column}" for column, _ in REFERENCES)

# What the catalog holds of the objects above: triggers of our tables as PostgreSQL prints
# them (enabled or not), our functions whole (body, volatility, security, settings), and any
# old foreign key left.
CATALOG_QUERY = """
SELECT md5(coalesce(string_agg(item, E'\\n' ORDER BY item), '')) FROM (
  SELECT format('trigger %s %s %s', c.relname, t.tgenabled, pg_get_triggerdef(t.oid)) AS item
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = :schema AND c.relname = ANY(:tables) AND NOT t.tgisinternal
  UNION ALL
  SELECT format('function %s', pg_get_functiondef(p.oid))
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname = :schema AND p.proname LIKE 'molstream\\_%'
  UNION ALL
  SELECT format('constraint %s', k.conname) FROM pg_constraint k
    JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = :schema AND c.relname = 'activity' AND k.conname = ANY(:old)
) objects
"""
OLD_PRESENT_QUERY = """
SELECT k.conname FROM pg_constraint k
  JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = :schema AND c.relname = 'activity' AND k.conname = ANY(:old)
"""
_META_KEY = "pgschema"


def statements(schema: str, tables: list[str]) -> list[str]:
    """The DDL that makes our functions and triggers in `schema` (a quoted identifier), for
    `tables` (those whose `last_modified_on` the update trigger keeps). None of it waits for a
    reader: CREATE TRIGGER's lock (SHARE ROW EXCLUSIVE) lets reads through; it waits for
    writers only."""
    out = [TOUCH_FUNCTION.format(s=schema)]
    out += [TOUCH_TRIGGER.format(s=schema, t=name) for name in tables]
    out.append(CHECK_FUNCTION.format(s=schema))
    out += [template.format(s=schema) for template in CHECK_TRIGGERS]
    out.append(GUARD_FUNCTION.format(s=schema))
    out += [template.format(s=schema, t=parent, c=column)
            for column, parent in REFERENCES for template in GUARD_TRIGGERS]
    return out


def install(conn: Connection, tables: list[str]) -> bool:
    """Create (or replace) the functions and triggers on PostgreSQL, in the schema of the
    activity table, unless the catalog already holds exactly what this version makes; True
    when it changed anything. Run under the schema lock (db.py), with a lock_timeout: the DDL
    locks the tables it touches."""
    # Where the session finds the tables (its search_path), not current_schema(): with
    # search_path "$user", public the latter may name a schema made after the tables.
    schema_name, schema = conn.exec_driver_sql(
        "SELECT n.nspname, quote_ident(n.nspname) FROM pg_class c JOIN pg_namespace n"
        " ON n.oid = c.relnamespace WHERE c.oid = to_regclass('activity')").one()
    ddl = statements(schema, tables)
    wanted = hashlib.sha256("\n".join(ddl).encode()).hexdigest()
    meta = Meta.__table__
    stored = conn.execute(select(meta.c.value).where(meta.c.key == _META_KEY)).scalar()
    if stored is not None and json.loads(stored) == {
            "ddl": wanted, "catalog": _catalog(conn, schema_name, tables)}:
        return False
    log.info("installing molstream's triggers and functions in schema %s", schema_name)
    old = conn.execute(text(OLD_PRESENT_QUERY), {"schema": schema_name,
                                                 "old": list(OLD_FOREIGN_KEYS)}).scalars()
    # Only a constraint that is there: ALTER TABLE locks out readers even when it does nothing.
    ddl = [f"ALTER TABLE {schema}.activity DROP CONSTRAINT {name}" for name in old] + ddl
    # Through the driver without parameters: the functions' format() strings hold % signs.
    cursor = conn.connection.driver_connection.cursor()
    for statement in ddl:
        cursor.execute(statement)
    value = json.dumps({"ddl": wanted, "catalog": _catalog(conn, schema_name, tables)})
    conn.execute(meta.delete().where(meta.c.key == _META_KEY))
    conn.execute(meta.insert().values(key=_META_KEY, value=value))
    return True


def _catalog(conn: Connection, schema: str, tables: list[str]) -> str:
    return conn.execute(text(CATALOG_QUERY), {"schema": schema, "tables": tables,
                                              "old": list(OLD_FOREIGN_KEYS)}).scalar_one()
