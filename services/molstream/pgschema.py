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
COMMITTED) sees the outcome. Deletes are what molstream never does (rows are soft-deleted), so
their side may be slower than a foreign key's.

The other references (molecule → phase, target → organism) stay declared foreign keys: only
the molecules and targets that change are written, a few percent of the rows.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from .db import Activity

# (column of activity, parent table), from the model's foreign keys (db.py), which create
# real constraints on other databases (SQLite).
REFERENCES: tuple[tuple[str, str], ...] = tuple(sorted(
    (fk.parent.name, fk.column.table.name) for fk in Activity.__table__.foreign_keys))

TOUCH_FUNCTION = """
CREATE OR REPLACE FUNCTION molstream_touch_last_modified() RETURNS trigger AS $$
BEGIN
  NEW.last_modified_on := clock_timestamp();
  RETURN NEW;
END $$ LANGUAGE plpgsql
"""
TOUCH_TRIGGER = """
CREATE OR REPLACE TRIGGER trg_{t}_last_modified BEFORE UPDATE ON {t}
FOR EACH ROW EXECUTE FUNCTION molstream_touch_last_modified()
"""


def _check_function() -> str:
    # Every name below comes from REFERENCES (our own model), none from input. For each
    # reference: the distinct ids the statement's rows name (one pass over them, where a
    # row-by-row test probed the parent once per row: 96k against 136k rows/s), the parents
    # found among them locked, and their count compared; the row to blame is looked for only
    # when one is missing.
    checks = "\n".join(f"""
  ids := ARRAY(SELECT DISTINCT {column} FROM new_rows WHERE {column} IS NOT NULL);
  SELECT count(*) INTO found FROM (
    SELECT 1 FROM {parent} p WHERE p.id = ANY(ids) ORDER BY p.id FOR KEY SHARE) locked;
  IF found < cardinality(ids) THEN
    SELECT n.id, n.{column} INTO bad_id, bad_value FROM new_rows n
    WHERE n.{column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.id = n.{column})
    LIMIT 1;
    RAISE foreign_key_violation USING MESSAGE = format(
      'activity %s: {column} = %s is not present in table "{parent}"', bad_id, bad_value),
      TABLE = 'activity', COLUMN = '{column}';
  END IF;""" for column, parent in REFERENCES)  # noqa: S608
    return f"""
CREATE OR REPLACE FUNCTION molstream_activity_references() RETURNS trigger AS $$
DECLARE ids bigint[]; found bigint; bad_id bigint; bad_value bigint;
BEGIN{checks}
  RETURN NULL;
END $$ LANGUAGE plpgsql
"""


CHECK_FUNCTION = _check_function()
CHECK_TRIGGERS = (
    "CREATE OR REPLACE TRIGGER trg_activity_references_insert AFTER INSERT ON activity"
    " REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION molstream_activity_references()",
    "CREATE OR REPLACE TRIGGER trg_activity_references_update AFTER UPDATE ON activity"
    " REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION molstream_activity_references()",
)
# A parent row referred to by an activity: no delete, no new id. TG_ARGV[0] is the column of
# activity that refers to the trigger's table (one of REFERENCES).
GUARD_FUNCTION = """
CREATE OR REPLACE FUNCTION molstream_referenced_by_activity() RETURNS trigger AS $$
DECLARE referring bigint;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    IF EXISTS (SELECT 1 FROM activity) THEN
      RAISE foreign_key_violation USING MESSAGE = format(
        'cannot truncate table "%s": table "activity" refers to it', TG_TABLE_NAME);
    END IF;
    RETURN NULL;
  END IF;
  IF TG_OP = 'DELETE' OR NEW.id IS DISTINCT FROM OLD.id THEN
    EXECUTE format('SELECT id FROM activity WHERE %I = $1 LIMIT 1', TG_ARGV[0])
      INTO referring USING OLD.id;
    IF referring IS NOT NULL THEN
      RAISE foreign_key_violation USING MESSAGE = format(
        '%s %s is still referenced from table "activity" (activity %s); molstream deletes'
        ' rows softly: set active = false', TG_TABLE_NAME, OLD.id, referring);
    END IF;
  END IF;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql
"""
GUARD_TRIGGERS = (
    "CREATE OR REPLACE TRIGGER trg_{t}_referenced BEFORE DELETE OR UPDATE OF id ON {t}"
    " FOR EACH ROW EXECUTE FUNCTION molstream_referenced_by_activity('{c}')",
    "CREATE OR REPLACE TRIGGER trg_{t}_referenced_truncate BEFORE TRUNCATE ON {t}"
    " FOR EACH STATEMENT EXECUTE FUNCTION molstream_referenced_by_activity('{c}')",
)
# Declared by molstream before the checks above replaced them (their names follow db.py's
# naming convention): dropped from databases made then.
OLD_FOREIGN_KEYS = tuple(f"fk_activity_{column}" for column, _ in REFERENCES)


def install(conn: Connection, tables: list[str]) -> None:
    """Create (or replace) the functions and triggers on PostgreSQL; `tables` are the tables
    the update trigger keeps `last_modified_on` for. Run under the schema lock (db.py)."""
    # Through the driver without parameters: the functions' format() strings hold % signs.
    cursor = conn.connection.driver_connection.cursor()
    cursor.execute(TOUCH_FUNCTION)
    for name in tables:
        cursor.execute(TOUCH_TRIGGER.format(t=name))
    for constraint in OLD_FOREIGN_KEYS:
        cursor.execute(f"ALTER TABLE activity DROP CONSTRAINT IF EXISTS {constraint}")
    cursor.execute(CHECK_FUNCTION)
    for statement in CHECK_TRIGGERS:
        cursor.execute(statement)
    cursor.execute(GUARD_FUNCTION)
    for column, parent in REFERENCES:
        for template in GUARD_TRIGGERS:
            cursor.execute(template.format(t=parent, c=column))
