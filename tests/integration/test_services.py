"""The test environment itself: every fixture gives a real, working service on loopback."""

from __future__ import annotations

import base64
import ftplib
import hashlib
import http.client
import os
import ssl
import uuid

import pytest
import redis
import sqlalchemy as sa
import waits
from kafka import KafkaConsumer, KafkaProducer
from molstream_dev import PostgresServer, RedisServer
from molstream_dev.http import parse_range

DATA = os.urandom(1_000_003)  # odd size: no chunk boundary lines up with it


@pytest.fixture
def root(tmp_path):
    (tmp_path / "data.bin").write_bytes(DATA)
    return tmp_path


@pytest.mark.kafka
def test_kafka_produce_and_consume(kafka_bootstrap):
    topic = f"svc-{uuid.uuid4().hex[:8]}"  # auto-created on first use
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all",
                             max_request_size=8 * 1024 * 1024)
    big = os.urandom(4 * 1024 * 1024)  # the broker takes messages up to 16 MiB
    producer.send(topic, b"hello").get(timeout=30)
    producer.send(topic, big).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=topic,
                             auto_offset_reset="earliest",
                             fetch_max_bytes=32 * 1024 * 1024,
                             max_partition_fetch_bytes=32 * 1024 * 1024)
    try:
        values = [m.value for m in waits.consume(consumer, 2, what="the two messages sent")]
    finally:
        consumer.close()
    assert values == [b"hello", big]


@pytest.mark.redis
def test_redis_set_get_flush(redis_url, redis_server):
    client = redis.Redis.from_url(redis_url)
    try:
        client.set("molstream:test", "1")
        assert client.get("molstream:test") == b"1"
        if redis_server is not None:
            redis_server.flush()
            assert client.get("molstream:test") is None
    finally:
        client.close()


def _ftp_get(ftp: ftplib.FTP, name: str, rest: int | None = None) -> bytes:
    out = bytearray()
    try:
        ftp.retrbinary(f"RETR {name}", out.extend, rest=rest)
    except ftplib.error_temp as e:  # 426: the server cut the data connection
        assert str(e).startswith("426"), e
    return bytes(out)


@pytest.mark.ftp
@pytest.mark.parametrize("tls", [False, True], ids=["ftp", "ftps"])
def test_ftp_download_and_resume_after_cut(ftp_server, root, tls, tls_ca_file):
    server = ftp_server(root, tls=tls, cut_after_bytes=300_000)
    assert server.url("data.bin").startswith(("ftps://" if tls else "ftp://") + server.user)
    if tls:
        client = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=tls_ca_file))
    else:
        client = ftplib.FTP()
    client.connect(server.host, server.port, timeout=30)
    client.login(server.user, server.password)
    if tls:
        client.prot_p()
    first = _ftp_get(client, "data.bin")
    assert len(first) == 300_000 and server.cuts == 1  # cut exactly there
    rest = _ftp_get(client, "data.bin", rest=len(first))  # the cut happens once
    assert first + rest == DATA
    client.quit()


@pytest.mark.ftp
def test_ftp_refuses_anonymous_and_wrong_password(ftp_server, root):
    server = ftp_server(root)
    for user, password in (("anonymous", "x@y"), (server.user, "wrong")):
        client = ftplib.FTP()
        client.connect(server.host, server.port, timeout=30)
        with pytest.raises(ftplib.error_perm):
            client.login(user, password)
        client.close()


@pytest.mark.ftp
def test_ftp_faults_set_while_running_and_restart_on_same_port(ftp_server, root):
    server = ftp_server(root)
    server.set_faults(cut_after_bytes=1000)
    client = ftplib.FTP()
    client.connect(server.host, server.port, timeout=30)
    client.login(server.user, server.password)
    assert len(_ftp_get(client, "data.bin")) == 1000
    client.quit()
    server.kill()
    server.start()  # same port, same control file: the cut was consumed
    client = ftplib.FTP()
    client.connect(server.host, server.port, timeout=30)
    client.login(server.user, server.password)
    assert hashlib.sha256(_ftp_get(client, "data.bin")).digest() == hashlib.sha256(DATA).digest()
    client.quit()


def _http_get(server, path: str, headers: dict[str, str] | None = None):
    if server.tls:
        context = ssl.create_default_context(cafile=server.cert)
        conn = http.client.HTTPSConnection(server.host, server.port, context=context, timeout=30)
    else:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        try:
            body = response.read()
        except http.client.IncompleteRead as e:
            body = e.partial
        return response.status, response.headers, body
    finally:
        conn.close()


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_http_range_and_resume_after_cut(http_server, root, tls):
    server = http_server(root, tls=tls, user="u", password="pw", cut_after_bytes=200_000)
    auth = {"Authorization": "Basic " + base64.b64encode(b"u:pw").decode()}
    assert _http_get(server, "/data.bin")[0] == 401
    status, headers, first = _http_get(server, "/data.bin", auth)
    assert status == 200 and headers["Accept-Ranges"] == "bytes"
    assert len(first) == 200_000 and server.cuts == 1
    status, headers, rest = _http_get(server, "/data.bin", {**auth, "Range": "bytes=200000-"})
    assert status == 206
    assert headers["Content-Range"] == f"bytes 200000-{len(DATA) - 1}/{len(DATA)}"
    assert first + rest == DATA
    status, _, tail = _http_get(server, "/data.bin", {**auth, "Range": "bytes=-10"})
    assert (status, tail) == (206, DATA[-10:])
    status, headers, _ = _http_get(server, "/data.bin", {**auth, "Range": "bytes=2000000-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(DATA)}"
    assert _http_get(server, "/../etc/passwd", auth)[0] == 404


def test_parse_range():
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=-5", 100) == (95, 99)
    assert parse_range("bytes=50-500", 100) == (50, 99)
    assert parse_range("bytes=100-", 100) == "unsatisfiable"
    assert parse_range("bytes=0-1,5-6", 100) is None  # several ranges: the whole file
    assert parse_range("items=0-1", 100) is None


@pytest.mark.postgres
def test_postgres_fresh_database_per_test(postgres_url):
    assert postgres_url.startswith("postgresql+psycopg://")
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            )).scalar() == 0
            conn.execute(sa.text("CREATE TABLE t (id int PRIMARY KEY, name text)"))
            conn.execute(sa.text("INSERT INTO t VALUES (1, 'a'), (2, 'b')"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar() == 2
    finally:
        engine.dispose()


# --- restart on the same port and data, as the fault-injection tests do


@pytest.mark.kafka
def test_kafka_broker_restarts_on_the_same_port_with_its_data(kafka_broker, kafka_bootstrap):
    if kafka_broker is None:
        pytest.skip("MOLSTREAM_TEST_KAFKA: the broker is not ours to stop")
    topic = f"svc-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    producer.send(topic, b"before").get(timeout=30)
    producer.close()
    kafka_broker.stop()
    kafka_broker.start()
    assert kafka_broker.bootstrap == kafka_bootstrap
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap,
                             auto_offset_reset="earliest")
    try:
        (message,) = waits.consume(consumer, 1, what="the message sent before the restart")
        assert message.value == b"before"
    finally:
        consumer.close()


@pytest.mark.redis
def test_redis_stop_and_start_on_the_same_port():
    with RedisServer() as server:
        url = server.url
        server.stop()
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        with pytest.raises(redis.ConnectionError):
            client.ping()
        server.start()
        assert server.url == url and client.ping()
        client.close()
    assert not server.dir.exists()  # close() removed what it created


@pytest.mark.postgres
def test_postgres_killed_and_started_again_keeps_its_data():
    with PostgresServer() as server:
        engine = sa.create_engine(server.url, poolclass=sa.pool.NullPool)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (id int)"))
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        server.kill()
        server.start()
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar() == 1
        engine.dispose()


def test_http_kill_and_start_on_the_same_port(http_server, root):
    server = http_server(root)
    assert _http_get(server, "/data.bin")[2] == DATA
    server.kill()
    with pytest.raises(ConnectionRefusedError):
        _http_get(server, "/data.bin")
    server.start()
    assert _http_get(server, "/data.bin")[2] == DATA
