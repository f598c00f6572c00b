"""PgBouncer in transaction pooling between the workers and PostgreSQL, as CloudNativePG's Pooler
puts it there: TLS on both sides, two server sessions for two workers. The real ChEMBL rows
through two worker processes give the tables a worker writing to the server directly gives.

What transaction pooling takes from a client: a connection's consecutive transactions may run
in different server sessions, and one session serves several clients in turn. So psycopg's
server-side prepared statements are turned off (`prepare_threshold=none` in the URL; Debian's
PgBouncer 1.18 cannot track them), and molstream's staging tables are made, if missing, in the
transaction that uses them (molstream.pgmerge)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest
from conftest import Pipeline
from expected import actual_tables, expected_tables
from molstream import pgmerge
from molstream.config import Mode
from molstream.db import Molecule, create_schema, make_engine
from molstream.dberrors import describe
from sqlalchemy import text
from sqlalchemy.exc import ArgumentError, DBAPIError

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.postgres]

DATA = Path(__file__).resolve().parents[1] / "data" / "chembl-real"
FILE = "activities.csv.gz"
NO_PREPARE = "&prepare_threshold=none"


def test_the_pooler_shares_one_server_session_between_clients(pgbouncer, postgres_local):
    """Transaction pooling is on: a second client's transaction runs in the server session
    the first client's last one ran in, while both stay connected (in session pooling the
    first client keeps its session until it disconnects)."""
    url = pgbouncer.url_for(postgres_local.new_login())
    with psycopg.connect(url, autocommit=True) as a, psycopg.connect(url, autocommit=True) as b:
        first = a.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert b.execute("SELECT pg_backend_pid()").fetchone()[0] == first


def test_prepared_statements_meet_in_a_shared_session_unless_turned_off(pgbouncer,
                                                                       postgres_local):
    """Two clients, each running one statement often enough for psycopg to prepare it, name
    it alike in the session they share: the second is refused, and the error says what to
    do. With prepare_threshold=none in the URL nothing is prepared."""
    url = pgbouncer.url_for(postgres_local.new_login())
    query = text("SELECT count(*) FROM pg_class WHERE relpages >= :n")
    engines = [make_engine(url) for _ in range(2)]
    try:
        with pytest.raises(DBAPIError) as refused:
            for engine in engines:  # (committed: psycopg deallocates all on a rollback)
                with engine.begin() as conn:
                    for n in range(10):
                        conn.execute(query, {"n": n}).scalar_one()
        assert refused.value.orig.sqlstate in ("42P05", "26000")
        assert "add prepare_threshold=none to the database URL" in describe(refused.value)
    finally:
        for engine in engines:
            engine.dispose()

    engines = [make_engine(url + NO_PREPARE) for _ in range(2)]
    try:
        for engine in engines:
            with engine.begin() as conn:
                assert [conn.execute(query, {"n": n}).scalar_one() >= 0
                        for n in range(10)] == [True] * 10
    finally:
        for engine in engines:
            engine.dispose()


def test_staging_tables_are_there_in_whichever_session_a_transaction_lands(pgbouncer,
                                                                            postgres_local):
    """molstream.pgmerge's staging tables live in a server session. Through the pooler a
    connection's transactions go to whichever session is free: a second connection opened
    in the session the first made them in finds them there already, and a transaction may
    land in a session that has none."""
    url = pgbouncer.url_for(postgres_local.new_login()) + NO_PREPARE
    engines = [make_engine(url) for _ in range(2)]
    try:
        create_schema(engines[0])
        for engine in engines:
            pgmerge.install(engine)
        with psycopg.connect(url.removesuffix(NO_PREPARE)) as holder:
            holder.execute("SELECT 1")  # holds one of the two sessions (its transaction is open)
            for engine in engines:  # so both connections open in the other, in turn
                engine.connect().close()
        # The held session, without staging tables, is now the one a transaction gets first.
        for n, engine in enumerate(engines):
            with engine.begin() as conn:
                written, _ = pgmerge.merge(conn, Molecule.__table__, Mode.UPSERT, ("id", "name"),
                                           [pa.array([n], pa.int64()), pa.array([f"m{n}"])])
            assert written == 1
        with engines[0].connect() as conn:
            assert conn.execute(text("SELECT id, name FROM molecule ORDER BY id")).all() == [
                (0, "m0"), (1, "m1")]
    finally:
        for engine in engines:
            engine.dispose()


def test_two_workers_through_pgbouncer_write_what_a_direct_worker_writes(
        make_pipeline, http_server, pgbouncer, postgres_local, redis_url, tmp_path):
    http = http_server(DATA)
    pooled = pgbouncer.url_for(postgres_local.new_login()) + NO_PREPARE
    direct = f"{postgres_local.new_login()}?{postgres_local.tls_query}"
    p = make_pipeline(database_url=pooled, rows_partitions=4, batch_size=2_000)
    p.fetch(http.url(FILE), "pooled")

    env = {"MOLSTREAM_KAFKA_BOOTSTRAP": p.settings.kafka_bootstrap,
           "MOLSTREAM_TOPIC_PREFIX": p.settings.topics.prefix,
           "MOLSTREAM_WORKER_GROUP": p.settings.worker_group,
           "MOLSTREAM_DATABASE_URL": pooled, "MOLSTREAM_REDIS_URL": redis_url,
           "MOLSTREAM_REPORTS_DIR": str(tmp_path / "reports"), "PATH": "/usr/bin:/bin"}
    workers = [subprocess.Popen([sys.executable, "-m", "molstream", "worker", "--until-complete",
                                 "pooled", "--idle-timeout", "120", "--no-progress"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err[-3000:] for _, err in outputs]

    # The same batches, read again by another consumer group, straight into the server.
    Pipeline(dataclasses.replace(p.settings, database_url=direct, redis_url="",
                                 worker_group=f"{p.settings.worker_group}-direct")).work("pooled")
    pooled_engine, direct_engine = make_engine(pooled), make_engine(direct)
    try:
        tables = actual_tables(pooled_engine)
        assert tables == actual_tables(direct_engine)
        assert tables == expected_tables(DATA / FILE)
        with pooled_engine.connect() as conn:
            assert conn.execute(text(
                "SELECT count(*), sum(rows) FROM applied_batch")).one() == (23, 44_077)
    finally:
        pooled_engine.dispose()
        direct_engine.dispose()


def test_prepare_threshold_goes_to_psycopg_and_never_to_libpq(pgbouncer, postgres_local):
    url = pgbouncer.url_for(postgres_local.new_login())
    for value, threshold in (("none", None), ("3", 3)):
        engine = make_engine(f"{url}&prepare_threshold={value}")
        try:
            with engine.connect() as conn:
                assert conn.connection.driver_connection.prepare_threshold == threshold
        finally:
            engine.dispose()
    with pytest.raises(ArgumentError, match="prepare_threshold='off' in the database URL"):
        make_engine(f"{url}&prepare_threshold=off")
