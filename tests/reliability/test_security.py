"""Security: credentials never leak, SQL is never built from input, and the fetcher caps what a
source may cost (bytes downloaded, bytes inflated, time), each cap set by its environment
variable and ending the fetch with an error that names it.

(The operator's side — URL allow-list, file:// refused in the cluster, least-privilege Role,
non-root pods — is tested under tests/operator and tests/charts.)
"""

from __future__ import annotations

import ast
import base64
import csv
import gzip
import re
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from harness import fetch_args, service_env, sqlite_path, worker_args
from molstream.contract import COLUMN_NAMES
from molstream.db import make_engine
from molstream.sample import generate
from sqlalchemy import text

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "services"

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.ftp]


@pytest.fixture
def source(tmp_path) -> Path:
    """2,000 generated rows plus one bad row, so that the rejected topic has something too."""
    root = tmp_path / "srv"
    root.mkdir()
    generate(root / "activities.csv", 2_000, seed=5)
    with open(root / "activities.csv", "a") as f:
        f.write("not-a-number,1,x,,,,2,T,,Ki,,,\n")
    return root


# -- credentials --------------------------------------------------------------------------------


def _haystacks(procs_run, topic_watch, settings) -> dict[str, bytes]:
    """Everything the pipeline wrote that a person or another system may read."""
    out: dict[str, bytes] = {}
    for proc in procs_run:
        out[f"{proc.name} stdout/stderr ({proc.err_path.name})"] = (
            proc.out_path.read_bytes() + proc.err_path.read_bytes())
    for topic in (settings.topics.rows, settings.topics.rejected, settings.topics.events):
        out[f"topic {topic}"] = b"\n".join(
            (m.key or b"") + b" " + m.value + b" " + repr(m.headers).encode()
            for m in topic_watch(topic).messages())
    for path in sorted(settings.reports_dir.rglob("*")):
        if path.is_file():
            out[f"report {path.name}"] = path.read_bytes()
    db = sqlite_path(settings.database_url)
    for path in sorted(db.parent.glob(db.name + "*")):  # the file, its WAL and shared memory
        out[f"database file {path.name}"] = path.read_bytes()
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            out["ingest_run table"] = repr(
                conn.execute(text("SELECT * FROM ingest_run")).all()).encode()
    finally:
        engine.dispose()
    for path in sorted(settings.work_dir.rglob("*")):
        if path.is_file():
            out[f"work file {path}"] = path.read_bytes()
    return out


def test_credentials_never_leak(source, tmp_path, make_pipeline, ftp_server, http_server, procs,
                                topic_watch):
    """Source credentials given in the URL, in the environment and in *_FILE files (and a wrong
    password, and a password pasted into a URL without percent-encoding) appear nowhere: not
    in the fetcher's or worker's output at DEBUG level, not on any topic, not in reports, not
    in the database (ingest_run included), not in scratch files."""
    token, wrong_token = uuid.uuid4().hex, uuid.uuid4().hex
    password, wrong = f"S3cr3t/Pa55@{token}", f"Wr0ng/{wrong_token}"
    user = "reader"
    ftp = ftp_server(source, user=user, password=password)
    http = http_server(source, user=user, password=password)
    p = make_pipeline()
    secret_files = tmp_path / "secrets"
    secret_files.mkdir()
    (secret_files / "username").write_text(user + "\n")
    (secret_files / "password").write_text(password + "\n")
    plain = ftp.url("activities.csv", with_credentials=False)
    hostpart = plain.removeprefix("ftp://")
    env_creds = {"MOLSTREAM_SOURCE_USERNAME": user, "MOLSTREAM_SOURCE_PASSWORD": password}
    runs = {
        "url": (f"ftp://{user}:{quote(password, safe='')}@{hostpart}", {}),
        "env": (plain, env_creds),
        "file": (plain, {"MOLSTREAM_SOURCE_USERNAME_FILE": str(secret_files / "username"),
                         "MOLSTREAM_SOURCE_PASSWORD_FILE": str(secret_files / "password")}),
        "http": (http.url("activities.csv"), env_creds),
    }
    failing = {
        "wrong": (f"ftp://{user}:{quote(wrong, safe='')}@{hostpart}", {}, "login refused"),
        "unencoded": (f"ftp://{user}:{password}@{hostpart}", {}, "percent-encode"),
    }
    ran = []
    for name, (url, extra) in runs.items():
        proc = procs(f"fetch-{name}", ["-v", *fetch_args(url, name)], service_env(p.settings,
                                                                                  **extra))
        proc.expect_success(120)
        ran.append(proc)
    for name, (url, extra, message) in failing.items():
        proc = procs(f"fetch-{name}", ["-v", *fetch_args(url, name)],
                     service_env(p.settings, **extra))
        assert proc.wait(120) == 3, proc.stderr[-2000:]  # permanent: the Job is not retried
        assert message in proc.stderr, proc.stderr[-2000:]
        ran.append(proc)
    worker = procs("worker", ["-v", *worker_args(*runs)], service_env(p.settings))
    worker.expect_success(120)
    ran.append(worker)
    # The same file four times into one database: the first run writes it, the others find
    # every row already there.
    done = re.findall(r"ingest (\w+) completed: (\d+) rows written, 1 rejected", worker.stderr)
    assert sorted(done) == sorted([("url", "2000"), ("env", "0"), ("file", "0"), ("http", "0")])

    haystacks = _haystacks(ran, topic_watch, p.settings)
    assert any(b"ingest_id" in v for k, v in haystacks.items() if "rejected" in k)
    assert b"reader:***@" in haystacks["ingest_run table"]  # the source is kept, redacted
    needles = {password, quote(password, safe=""), quote(password), token, wrong,
               quote(wrong, safe=""), wrong_token,
               base64.b64encode(f"{user}:{password}".encode()).decode()}
    leaks = [f"{needle!r} in {where}" for where, hay in haystacks.items()
             for needle in needles if needle.encode() in hay]
    assert not leaks, "credentials leaked:\n" + "\n".join(leaks)


# -- SQL ----------------------------------------------------------------------------------------

INJECTIONS = (
    "Robert'); DROP TABLE molecule;--",
    "x' OR '1'='1",
    '"; DELETE FROM activity; --',
    "1; UPDATE activity SET value = 0 WHERE 1=1",
    "%s %(value)s ? :value $1 {value}",  # every driver's placeholder syntax
    "\\'; SELECT pg_sleep(10); --",
    "` ' \" \\ ; -- /* */",
)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres",
                                                            marks=pytest.mark.postgres)])
def test_sql_lookalike_strings_are_stored_verbatim(backend, request, tmp_path, make_pipeline):
    """Strings that look like SQL or like bind parameters, in every text column and in the
    ingest id, are stored as they are and change nothing else."""
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    path = tmp_path / "injection.csv"
    with open(path, "w", newline="") as f:
        out = csv.DictWriter(f, COLUMN_NAMES)
        out.writeheader()
        for i, s in enumerate(INJECTIONS, start=1):
            out.writerow({"activity_id": i, "molecule_id": 100 + i, "molecule_name": s,
                          "molecule_max_phase": "", "molecule_structure": s,
                          "molecule_inchi_key": "", "target_id": 200 + i, "target_name": s,
                          "target_organism": s, "activity_type": s, "activity_units": s,
                          "activity_value": i, "activity_relation": "="})
    p = make_pipeline(database_url=url)
    ingest = "run'); DROP TABLE ingest_run; --"
    report = p.ingest(path.as_uri(), ingest)
    assert report["rows_written"] == len(INJECTIONS)
    engine = make_engine(p.settings.database_url)
    try:
        with engine.connect() as conn:
            def q(sql):
                return conn.execute(text(sql)).all()
            n = len(INJECTIONS)
            assert sorted(q("SELECT name, structure FROM molecule")) == sorted(
                (s, s) for s in INJECTIONS)
            assert sorted(r[0] for r in q("SELECT name FROM target")) == sorted(INJECTIONS)
            for dimension in ("organism", "activity_type", "unit"):
                values = sorted(r[0] for r in q(f"SELECT value FROM {dimension}"))  # noqa: S608
                assert values == sorted(INJECTIONS), dimension
            assert q("SELECT id, value FROM activity ORDER BY id") == [
                (i, float(i)) for i in range(1, n + 1)]
            assert q("SELECT id, status FROM ingest_run") == [(ingest, "completed")]
    finally:
        engine.dispose()


_SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA|TRIGGER|"
                        r"FROM|WHERE|VALUES|BEGIN)\b")
# Every value interpolated into SQL text anywhere in services/, and why it is not input.
# The test fails on any other, and on an entry here that no longer matches anything.
ALLOWED_INTERPOLATIONS = {
    ("molstream/db.py", "_SCHEMA_LOCK"): "a module constant (the advisory lock key)",
    ("molstream/db.py", "int(busy_timeout_s * 1000)"): "an int, from code, not from input",
    ("molstream/db.py", "name"): "the trigger templates' {t}: keys of DATA_TABLES, constants",
    ("molstream/db.py", "table"): "names of the tables of our own metadata (DATA_TABLES)",
    ("molstream/db.py", "column"): "names of the columns of our own metadata (DATA_TABLES)",
    ("molstream/db.py", "int(width)"): "a width of our own metadata, as an integer",
    ("molstream/db.py", "table.name"): "a table of our own metadata (Base.metadata)",
    ("molstream/db.py", "ddl"): "a column of our own metadata, compiled by SQLAlchemy",
    ("molstream/pgmerge.py", "stage"): "the name of a staging table of our own metadata (STAGE)",
    ("molstream/pgmerge.py", "table"):
        "the name of a table of our own metadata (MERGED) or of its staging table (STAGE)",
    ("molstream/pgschema.py", "name"):
        "the update trigger's {t} (keys of DATA_TABLES), or a constraint name the catalog holds"
        " that is one of OLD_FOREIGN_KEYS (made from REFERENCES)",
    ("molstream/pgschema.py", "parent"): "a table of our own metadata (REFERENCES)",
    ("molstream/pgschema.py", "column"): "a column of our own metadata (REFERENCES)",
    ("molstream/pgschema.py", "checks"): "SQL made above from REFERENCES only",
    ("molstream/pgschema.py", "schema"):
        "the activity table's schema, quoted by the server (quote_ident)",
    ("molstream/pgmerge.py", "sql"):
        "the merge statement compiled from SQLAlchemy Core (_merge_sql), wrapped in a CTE",
    ("molstream/pgmerge.py", "', '.join(rows.column_names)"):
        "column names of our own metadata (apply.py's *_SOURCES, given to pa.table by merge),"
        " never a file's header",
}
# Calls that send SQL text to the database, and the arguments they may get besides literals.
SQL_SINKS = ("execute", "exec_driver_sql", "executemany", "executescript", "text")
ALLOWED_SQL_ARGUMENTS = {
    ("molstream/inserts.py", "sql"): "str() of a statement compiled from SQLAlchemy Core",
    ("molstream/pgmerge.py", "_merge_sql(conn.engine, table, mode, columns)"):
        "str() of a statement compiled from SQLAlchemy Core",
    ("molstream/pgmerge.py", "statement"): "CREATE TABLE of our own metadata, compiled",
    ("molstream/pgmerge.py", "_STAGE_DDL[table.name]"):
        "CREATE TABLE IF NOT EXISTS of our own metadata (STAGE), compiled at import",
    ("molstream/pgschema.py", "statement"):
        "DDL made by statements() from module constants and the quoted schema",
}


def _sql_findings() -> tuple[list[str], set[tuple[str, str]]]:
    bad: list[str] = []
    used: set[tuple[str, str]] = set()
    for path in sorted(SERVICES.rglob("*.py")):
        rel = str(path.relative_to(SERVICES))
        _scan(rel, ast.parse(path.read_text(), filename=rel), bad, used)
    return bad, used


def _scan(rel: str, tree: ast.Module, bad: list[str], used: set[tuple[str, str]]) -> None:
    constants = {t.id: node.value.value for node in ast.walk(tree)
                 if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                 and isinstance(node.value.value, str) for t in node.targets
                 if isinstance(t, ast.Name)}

    def literal(node) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name) and node.id in constants:
            return constants[node.id]
        return None

    def check(where: ast.AST, template: str, values: list[ast.AST]) -> None:
        if not _SQL_WORDS.search(template):
            return
        for value in values:
            key = (rel, ast.unparse(value))
            if key in ALLOWED_INTERPOLATIONS:
                used.add(key)
            else:
                bad.append(f"{rel}:{where.lineno}: SQL built from {ast.unparse(value)!r}")

    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):  # f"... {x} ..."
            template = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
            check(node, template, [v.value for v in node.values
                                   if isinstance(v, ast.FormattedValue)])
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
            for side, other in ((node.left, node.right), (node.right, node.left)):
                template = literal(side)
                if template is not None:  # "..." % x, "..." + x
                    check(node, template, [other])
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "format"):  # "...".format(...) / TEMPLATE.format(...)
            template = literal(node.func.value)
            if template is None and isinstance(node.func.value, ast.Name):
                template = "SELECT"  # a template chosen at run time: vet its arguments
            if template is not None:
                check(node, template, [*node.args, *(k.value for k in node.keywords)])
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in SQL_SINKS or not node.args:
                continue
            arg = node.args[0]
            if literal(arg) is not None or isinstance(arg, ast.JoinedStr):
                continue  # a literal, or an f-string (vetted above)
            if isinstance(arg, ast.BinOp) and (literal(arg.left) is not None
                                               or literal(arg.right) is not None):
                continue  # "..." % x or "..." + x (vetted above)
            if isinstance(arg, ast.Call) and (
                    name in ("execute", "executemany")  # SQLAlchemy Core constructs
                    or isinstance(arg.func, ast.Attribute) and arg.func.attr == "format"):
                continue
            key = (rel, ast.unparse(arg))
            if key in ALLOWED_SQL_ARGUMENTS:
                used.add(key)
            else:
                bad.append(f"{rel}:{node.lineno}: {name}() given {ast.unparse(arg)!r}")


def test_no_sql_is_built_from_variables():
    """A static check over services/: SQL text is literal, or interpolates only the vetted
    constants above (table names, a lock key, an int); everything else goes through SQLAlchemy
    Core with bound parameters."""
    bad, used = _sql_findings()
    assert not bad, "SQL built from variables:\n" + "\n".join(bad)
    stale = (set(ALLOWED_INTERPOLATIONS) | set(ALLOWED_SQL_ARGUMENTS)) - used
    assert not stale, f"allow-list entries that match nothing any more: {sorted(stale)}"


def test_the_sql_check_catches_what_it_should(monkeypatch, tmp_path):
    """The static check itself, on a planted module: it must flag each way of building SQL."""
    planted = tmp_path / "molstream"
    planted.mkdir()
    (planted / "bad.py").write_text(
        "def f(conn, name, value):\n"
        "    conn.exec_driver_sql(f'SELECT * FROM {name}')\n"
        "    conn.execute('DELETE FROM t WHERE v = %s' % value)\n"
        "    conn.execute(text('UPDATE t SET v = ' + value))\n"
        "    conn.execute(text('SELECT {}'.format(value)))\n"
        "    query = build(value)\n"
        "    conn.exec_driver_sql(query)\n"
        "    conn.exec_driver_sql(build(value))\n")
    monkeypatch.setattr(sys.modules[__name__], "SERVICES", tmp_path)
    bad, _ = _sql_findings()
    assert len(bad) == 6, bad


# -- caps on what a source may cost -------------------------------------------------------------


def _fetch_fails(procs, p, url: str, **env: str):
    start = time.monotonic()
    proc = procs("fetcher", fetch_args(url, "capped"), service_env(p.settings, **env))
    assert proc.wait(120) == 3, proc.stderr[-2000:]  # a cap is permanent: the Job is not retried
    return proc, time.monotonic() - start


def _nothing_published(p, topic_watch, message: str) -> None:
    assert topic_watch(p.settings.topics.rows).end() == 0
    failed = [e for e in topic_watch(p.settings.topics.events).json() if e["type"] == "failed"]
    assert len(failed) == 1 and message in failed[0]["reason"]


def test_download_size_cap_from_the_environment(source, make_pipeline, ftp_server, procs,
                                                topic_watch):
    ftp = ftp_server(source)
    p = make_pipeline()
    proc, _ = _fetch_fails(procs, p, ftp.url("activities.csv"),
                           MOLSTREAM_MAX_DOWNLOAD_BYTES="100000")
    message = "over the download limit of 100000 bytes (MOLSTREAM_MAX_DOWNLOAD_BYTES)"
    assert message in proc.stderr
    _nothing_published(p, topic_watch, message)


def test_decompressed_size_cap_from_the_environment(tmp_path, make_pipeline, ftp_server, procs,
                                                    topic_watch):
    """A gzip bomb (1 GiB of zeros in 1 MB): refused at 10 MB, and the inflated scratch file
    is gone."""
    root = tmp_path / "bomb"
    root.mkdir()
    member = gzip.compress(b"\0" * (1 << 20), compresslevel=9)
    (root / "bomb.csv.gz").write_bytes(gzip.compress(b"activity_id\n") + member * 1024)
    ftp = ftp_server(root)
    p = make_pipeline()
    proc, _ = _fetch_fails(procs, p, ftp.url("bomb.csv.gz"),
                           MOLSTREAM_MAX_DECOMPRESSED_BYTES="10000000")
    message = ("inflates to more than 10000000 bytes (MOLSTREAM_MAX_DECOMPRESSED_BYTES): "
               "refusing it as a possible gzip bomb")
    assert message in proc.stderr
    _nothing_published(p, topic_watch, message)
    assert not list(p.settings.work_dir.rglob("*.csv"))


def _silent_server() -> tuple[socket.socket, int]:
    """Accepts connections and never says a word (a hung FTP or HTTP server)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return server, server.getsockname()[1]


def _trickling_http_server() -> tuple[socket.socket, int]:
    """Answers 200 with a 100 MB body, then sends 100 bytes every 0.2 s."""
    server = socket.create_server(("127.0.0.1", 0))

    def handle(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
                while True:
                    conn.sendall(b"x" * 100)
                    time.sleep(0.2)
            except OSError:
                return

    def accept() -> None:
        while True:
            try:
                conn = server.accept()[0]
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return server, server.getsockname()[1]


def test_download_time_cap_from_the_environment(source, make_pipeline, ftp_server, procs,
                                                topic_watch):
    """MOLSTREAM_DOWNLOAD_TIMEOUT_S=3 ends the fetch after about 3 s, whether the server is slow
    (FTP at 20 kB/s), trickles (HTTP, 500 B/s) or never answers (FTP and HTTP)."""
    message = "download took longer than 3s (MOLSTREAM_DOWNLOAD_TIMEOUT_S)"
    slow = ftp_server(source, throttle_bps=20_000)
    silent, silent_port = _silent_server()
    trickle, trickle_port = _trickling_http_server()
    try:
        started = []  # the four fetchers run side by side
        for url in (slow.url("activities.csv"), f"ftp://127.0.0.1:{silent_port}/a.csv",
                    f"http://127.0.0.1:{silent_port}/a.csv",
                    f"http://127.0.0.1:{trickle_port}/a.csv"):
            p = make_pipeline()
            env = service_env(p.settings, MOLSTREAM_DOWNLOAD_TIMEOUT_S="3")
            started.append((url, p, procs("fetcher", fetch_args(url, "capped"), env),
                            time.monotonic()))
        for url, p, proc, start in started:
            assert proc.wait(120) == 2, (url, proc.stderr[-2000:])
            seconds = time.monotonic() - start
            assert message in proc.stderr, (url, proc.stderr[-2000:])
            # 3 s of download, plus the process's start-up (imports, Kafka) and its exit.
            assert seconds < 40, (url, seconds)
            _nothing_published(p, topic_watch, message)
    finally:
        silent.close()
        trickle.close()
