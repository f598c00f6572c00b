"""pytest plugin: the real services the pipeline tests use, started on 127.0.0.1.

Session-wide: a Kafka broker, a Redis server, a PostgreSQL cluster (each test gets its own
empty database). Per test: FTP/FTPS and HTTP(S) servers over a directory of the test's choosing.
Set MOLSTREAM_TEST_KAFKA (bootstrap), MOLSTREAM_TEST_REDIS (URL) or MOLSTREAM_TEST_POSTGRES
(SQLAlchemy URL of a server where databases may be created) to use services already running.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .certs import self_signed
from .ftp import FtpServer
from .http import HttpServer
from .kafka import KafkaServer
from .postgres import PostgresServer, create_database
from .redis import RedisServer


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaServer | None]:
    """The broker handle (stop/start/kill for fault tests); None when MOLSTREAM_TEST_KAFKA."""
    if os.environ.get("MOLSTREAM_TEST_KAFKA"):
        yield None
        return
    server = KafkaServer().start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: KafkaServer | None) -> str:
    return os.environ.get("MOLSTREAM_TEST_KAFKA") or kafka_broker.bootstrap


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer | None]:
    if os.environ.get("MOLSTREAM_TEST_REDIS"):
        yield None
        return
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer | None) -> str:
    return os.environ.get("MOLSTREAM_TEST_REDIS") or redis_server.url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | None]:
    if os.environ.get("MOLSTREAM_TEST_POSTGRES"):
        yield None
        return
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer | None) -> str:
    """A fresh, empty database for this test."""
    if postgres_server is None:
        return create_database(os.environ["MOLSTREAM_TEST_POSTGRES"])
    return postgres_server.new_database()


@pytest.fixture
def tls_ca_file() -> Path:
    """The CA file that makes clients trust the FTPS/HTTPS test servers."""
    return self_signed()[0]


@pytest.fixture
def ftp_server() -> Iterator[Callable[..., FtpServer]]:
    started: list[FtpServer] = []

    def start(root: Path, **options) -> FtpServer:
        server = FtpServer(root, **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def http_server() -> Iterator[Callable[..., HttpServer]]:
    started: list[HttpServer] = []

    def start(root: Path, **options) -> HttpServer:
        server = HttpServer(root, **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
