"""pytest plugin: the real services the pipeline tests use, started on 127.0.0.1.

Session-wide: a Kafka broker (and, for the tests that ask, a secured one: secured_kafka), a
Redis server, a PostgreSQL cluster (TLS only: each test gets
its own empty database, reached with sslmode=verify-full), PgBouncer in front of it. Per test:
FTP/FTPS, HTTP(S) and SFTP servers over a directory of the test's choosing.
Set MOLSTREAM_TEST_KAFKA (bootstrap), MOLSTREAM_TEST_REDIS (URL) or MOLSTREAM_TEST_POSTGRES
(SQLAlchemy URL of a server where databases may be created) to use services already running;
the handle fixtures (kafka_broker, redis_server, postgres_server) are then None.

A service that cannot start (binary or jars missing, …) fails the test with the reason and the
provision script to run: these tests exist to run against the real thing, never skip quietly.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ._process import ServiceError, prune_run_dirs
from .certs import self_signed
from .ftp import FtpServer
from .http import HttpServer
from .kafka import KafkaServer
from .kafka_secured import SecuredKafkaServer
from .pgbouncer import PgBouncer
from .postgres import PostgresServer, create_database, drop_database
from .redis import RedisServer
from .sftp import SftpServer


def _start(factory: Callable[[], object]):
    try:
        return factory()
    except ServiceError as e:
        reason = str(e)
    pytest.fail(reason, pytrace=False)  # outside `except`: the message alone, no chained trace


def pytest_sessionstart(session) -> None:
    # Leftovers of sessions that died (killed runs, crashed CI jobs): Kafka's can be large.
    if not hasattr(session.config, "workerinput"):
        prune_run_dirs()


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaServer | None]:
    """The broker handle (stop/start/kill for fault tests); None with MOLSTREAM_TEST_KAFKA."""
    if os.environ.get("MOLSTREAM_TEST_KAFKA"):
        yield None
        return
    server = _start(lambda: KafkaServer().start())
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: KafkaServer | None) -> str:
    """"127.0.0.1:PORT" of a running broker."""
    return os.environ.get("MOLSTREAM_TEST_KAFKA") or kafka_broker.bootstrap


@pytest.fixture(scope="session")
def secured_kafka() -> Iterator[SecuredKafkaServer]:
    """A broker secured as Strimzi runs one (molstream_dev.kafka_secured): SASL_SSL
    (`.bootstrap`; SCRAM-SHA-512/256, PLAIN) and mTLS (`.ssl_bootstrap`) listeners with
    certificates of the test CA (`.ca_file`), an authorizer, users with ACLs on topics and
    groups starting with TOPIC_PREFIX; `.client_env(user, mtls=...)` gives a component's
    MOLSTREAM_KAFKA_* variables. Started only by the tests that ask for it."""
    server = _start(lambda: SecuredKafkaServer().start())
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer | None]:
    """The Redis handle (stop/start/flush); None with MOLSTREAM_TEST_REDIS."""
    if os.environ.get("MOLSTREAM_TEST_REDIS"):
        yield None
        return
    server = _start(lambda: RedisServer().start())
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer | None) -> str:
    """"redis://127.0.0.1:PORT/0"."""
    return os.environ.get("MOLSTREAM_TEST_REDIS") or redis_server.url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | None]:
    """The PostgreSQL cluster handle; None with MOLSTREAM_TEST_POSTGRES."""
    if os.environ.get("MOLSTREAM_TEST_POSTGRES"):
        yield None
        return
    server = _start(lambda: PostgresServer().start())
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def postgres_local(postgres_server: PostgresServer | None) -> Iterator[PostgresServer]:
    """The test environment's own PostgreSQL (TLS only, its CA, certificate and logins at
    hand), even where MOLSTREAM_TEST_POSTGRES names another server: for the tests of TLS and
    of PgBouncer."""
    if postgres_server is not None:
        yield postgres_server
        return
    server = _start(lambda: PostgresServer().start())
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def pgbouncer(postgres_local: PostgresServer) -> Iterator[PgBouncer]:
    """PgBouncer in transaction pooling in front of `postgres_local`, TLS on both sides;
    `pgbouncer.url_for(postgres_local.new_login())` is a login through it. Two server sessions
    per database and role: fewer than the connections of two workers, so their transactions
    do take turns in the same sessions."""
    bouncer = _start(lambda: PgBouncer(postgres_local, pool_size=2).start())
    try:
        yield bouncer
    finally:
        bouncer.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer | None) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty database for this test (dropped afterwards when
    nothing holds it open)."""
    server = os.environ.get("MOLSTREAM_TEST_POSTGRES") or postgres_server.admin_dsn
    url = create_database(server)
    yield url
    drop_database(server, url.rsplit("/", 1)[1])


@pytest.fixture
def tls_ca_file() -> Path:
    """The CA file that makes clients trust the FTPS/HTTPS test servers."""
    return self_signed()[0]


@pytest.fixture
def ftp_server() -> Iterator[Callable[..., FtpServer]]:
    """Factory: ftp_server(root, tls=False, user=..., password=..., throttle_bps=0,
    cut_after_bytes=0, writable=False) -> a running FtpServer, stopped after the test."""
    started: list[FtpServer] = []

    def start(root: Path, **options) -> FtpServer:
        server = FtpServer(root, **options)
        started.append(server)
        return _start(server.start)

    yield start
    for server in started:
        server.close()


@pytest.fixture
def http_server() -> Iterator[Callable[..., HttpServer]]:
    """Factory: http_server(root, tls=False, user=None, password=None, cut_after_bytes=0,
    throttle_bps=0, redirects={path: location}) -> a running HttpServer, stopped after the
    test."""
    started: list[HttpServer] = []

    def start(root: Path, **options) -> HttpServer:
        server = HttpServer(root, **options)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def sftp_server() -> Iterator[Callable[..., SftpServer]]:
    """Factory: sftp_server(root, user=..., password=..., authorized_keys=[public key line],
    cut_after_bytes=0) -> a running SftpServer (paramiko's SSH server), stopped after the
    test; its `known_hosts` line is what a client must be given."""
    started: list[SftpServer] = []

    def start(root: Path, **options) -> SftpServer:
        server = SftpServer(root, **options)
        started.append(server)
        return _start(server.start)

    yield start
    for server in started:
        server.close()
