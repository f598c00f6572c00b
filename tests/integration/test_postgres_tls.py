"""PostgreSQL over verified TLS, configured the two ways the chart can: sslmode/sslrootcert in the
database URL, or libpq's PGSSLMODE/PGSSLROOTCERT beside a CloudNativePG-style `uri`
(postgresql://user:password@host:port/db, the `<cluster>-app` Secret's key). Real worker processes
ingest the real ChEMBL rows; a CA that did not sign the server's certificate, or a host name the
certificate does not name, stops the worker with one line that says so (and no password)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from expected import actual_tables, expected_tables
from molstream.db import make_engine
from molstream_dev.certs import self_signed
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.postgres]

DATA = Path(__file__).resolve().parents[1] / "data" / "chembl-real"
FILE = "activities.csv.gz"


def _worker(url: str, tmp_path: Path, *, until: str = "", p=None, group: str = "",
            **env: str) -> subprocess.Popen:
    """`molstream worker` in a process of its own, with libpq's variables in `env` only (and a
    home without ~/.postgresql/root.crt)."""
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
            "MOLSTREAM_DATABASE_URL": url, "MOLSTREAM_REDIS_URL": ""}
    if p is not None:
        base |= {"MOLSTREAM_KAFKA_BOOTSTRAP": p.settings.kafka_bootstrap,
                 "MOLSTREAM_TOPIC_PREFIX": p.settings.topics.prefix,
                 "MOLSTREAM_WORKER_GROUP": group,
                 "MOLSTREAM_REPORTS_DIR": str(tmp_path / "reports")}
    else:  # it stops at the database, before it asks Kafka anything
        base["MOLSTREAM_KAFKA_BOOTSTRAP"] = "127.0.0.1:1"
    args = ["--until-complete", until, "--idle-timeout", "120"] if until else [
        "--idle-timeout", "1"]
    return subprocess.Popen([sys.executable, "-m", "molstream", "worker", *args, "--no-progress"],
                            env=base | env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_the_test_databases_are_reached_over_verified_tls_and_plaintext_is_refused(
        postgres_local):
    url = postgres_local.new_database()
    assert make_url(url).query["sslmode"] == "verify-full"
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")).scalar_one()
    finally:
        engine.dispose()
    plain = make_url(url).set(drivername="postgresql", query={"sslmode": "disable"})
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(plain.render_as_string(hide_password=False)).close()


def test_workers_verify_the_server_by_url_parameters_or_by_the_libpq_environment(
        make_pipeline, http_server, postgres_local, tmp_path):
    """One fetch, two consumer groups: a worker whose URL carries sslmode=verify-full and
    sslrootcert, and one given a CloudNativePG `uri` with PGSSLMODE/PGSSLROOTCERT, exactly as
    the chart sets them. Each writes the whole file."""
    http = http_server(DATA)
    ca = str(postgres_local.ca_file)
    by_url = f"{postgres_local.new_login()}?{postgres_local.tls_query}"
    uri = postgres_local.new_login()
    p = make_pipeline(database_url=by_url, batch_size=5_000)
    p.fetch(http.url(FILE), "tls")
    group = p.settings.worker_group
    workers = [_worker(by_url, tmp_path, until="tls", p=p, group=group),
               _worker(uri, tmp_path, until="tls", p=p, group=f"{group}-env",
                       PGSSLMODE="verify-full", PGSSLROOTCERT=ca)]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err[-3000:] for _, err in outputs]
    expected = expected_tables(DATA / FILE)
    for url in (by_url, f"{uri}?sslmode=verify-full&sslrootcert={ca}"):
        engine = make_engine(url)
        try:
            assert actual_tables(engine) == expected
        finally:
            engine.dispose()


def _one_error_line(worker: subprocess.Popen, password: str) -> str:
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 2, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: cannot open the database "), err
    assert password not in out + err and "Traceback" not in err
    return errors[0]


def test_a_ca_that_did_not_sign_the_server_certificate_stops_the_worker_with_one_line(
        postgres_local, tmp_path):
    uri = postgres_local.new_login()
    wrong_ca = str(self_signed()[0])  # the FTPS/HTTPS servers' own certificate: another issuer
    line = _one_error_line(_worker(uri, tmp_path, PGSSLMODE="verify-full",
                                   PGSSLROOTCERT=wrong_ca), make_url(uri).password)
    assert 'connection to server at "127.0.0.1"' in line
    assert "certificate verify failed" in line


def test_a_host_name_the_certificate_does_not_name_stops_the_worker_with_one_line(
        postgres_local, tmp_path):
    """The worker asks for db.example (reached at 127.0.0.1): the server's certificate names
    127.0.0.1 and localhost only, as a CloudNativePG certificate names its cluster's services
    and not, say, a pooler's."""
    uri = make_url(postgres_local.new_login())
    elsewhere = uri.set(host="db.example", query={"hostaddr": "127.0.0.1"})
    line = _one_error_line(
        _worker(elsewhere.render_as_string(hide_password=False), tmp_path,
                PGSSLMODE="verify-full", PGSSLROOTCERT=str(postgres_local.ca_file)),
        uri.password)
    assert "db.example" in line
    assert 'server certificate for "127.0.0.1" (and 1 other name) does not match host name ' \
           '"db.example"' in line


def test_sslmode_require_encrypts_but_verifies_nothing(postgres_local, monkeypatch, tmp_path):
    """sslmode=require without a CA connects to a server whose certificate names another host
    (or that anybody signed): encrypted, not verified. With a CA file at hand libpq checks the
    issuer (verify-ca), still not the host name. Only verify-full checks both."""
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.postgresql/root.crt to fall back on
    uri = make_url(postgres_local.new_login()).set(drivername="postgresql+psycopg",
                                                   host="db.example")

    def connects(**query: str) -> bool:
        engine = make_engine(uri.set(query={"hostaddr": "127.0.0.1", **query})
                             .render_as_string(hide_password=False))
        try:
            with engine.connect() as conn:
                return conn.execute(text(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")).scalar_one()
        finally:
            engine.dispose()

    ca, wrong_ca = str(postgres_local.ca_file), str(self_signed()[0])
    assert connects(sslmode="require")
    assert connects(sslmode="require", sslrootcert=ca)  # the host name is not checked
    with pytest.raises(OperationalError, match="certificate verify failed"):
        connects(sslmode="require", sslrootcert=wrong_ca)
    with pytest.raises(OperationalError, match='does not match host name "db.example"'):
        connects(sslmode="verify-full", sslrootcert=ca)
