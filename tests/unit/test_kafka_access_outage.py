"""The access probe (molstream.kafka_access) must not take an outage for a refusal, and names
a listener of another kind only on its own evidence.

A broker that is away behind something that accepts TCP and hangs up (a cloud load balancer
without a healthy target, an Istio/Linkerd sidecar whose upstream is down, a broker in its
controlled shutdown) is an outage: kafka-python's clients ride it out, and so must the probe.
A TLS listener spoken to in plaintext answers with a TLS alert; a SASL listener answers a
SaslHandshake with its mechanisms, a listener without SASL with ILLEGAL_SASL_STATE.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator

import pytest
from molstream.kafka_access import _servers, check_access
from molstream.kafka_security import KafkaAccessError, KafkaSecurity
from molstream_dev import certs

_API_VERSIONS, _SASL_HANDSHAKE = 18, 17


def _serve(handle: Callable[[socket.socket], None], *,
           tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """A port on 127.0.0.1 whose connections `handle` serves (over TLS with `tls`)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            try:
                conn.settimeout(5)
                if tls is not None:
                    conn = tls.wrap_socket(conn, server_side=True)
                handle(conn)
            except OSError:
                pass
            finally:
                conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    t.join()
    server.close()


def _recv_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("client went away")
        data += chunk
    return data


def _kafka(conn: socket.socket, *, handshake: tuple[int, list[str]] | None) -> None:
    """Answer ApiVersions (with no API, enough for the probe), then the SaslHandshake as
    `handshake` says (error code, mechanisms), or hang up there without a word (None)."""
    while True:
        size, = struct.unpack(">i", _recv_exactly(conn, 4))
        api_key, _, correlation = struct.unpack(">hhi", _recv_exactly(conn, size)[:8])
        if api_key == _API_VERSIONS:
            body = struct.pack(">ihi", correlation, 0, 0)
        elif api_key == _SASL_HANDSHAKE and handshake is not None:
            error, mechanisms = handshake
            body = struct.pack(">ihi", correlation, error, len(mechanisms)) + b"".join(
                struct.pack(">h", len(m)) + m.encode() for m in mechanisms)
        else:
            return  # (the connection is closed)
        conn.sendall(struct.pack(">i", len(body)) + body)


@pytest.fixture
def hangs_up() -> Iterator[str]:
    """A TCP port that accepts every connection and closes it at once."""
    yield from _serve(lambda conn: None)


@pytest.fixture
def server_tls() -> ssl.SSLContext:
    cert, key = certs.self_signed()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def _client(protocol: str) -> KafkaSecurity:
    sasl = protocol.startswith("SASL")
    return KafkaSecurity(protocol=protocol, username="u" if sasl else "",
                         password="p" if sasl else "",
                         ca_file=certs.self_signed()[0] if "SSL" in protocol else None)


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL", "SSL"])
def test_a_broker_away_behind_a_proxy_that_hangs_up_is_an_outage_not_a_refusal(hangs_up,
                                                                              protocol):
    try:
        check_access(hangs_up, _client(protocol), topics={"t": ("WRITE",)}, timeout_s=2)
    except KafkaAccessError as e:
        pytest.fail(f"{protocol}: an outage taken for a permanent refusal: {e}")


def test_a_broker_that_hangs_up_after_answering_api_versions_is_an_outage_over_ssl(server_tls):
    """A broker in its controlled shutdown: one close after ApiVersions says nothing about
    SASL."""
    for bootstrap in _serve(lambda c: _kafka(c, handshake=None), tls=server_tls):
        check_access(bootstrap, _client("SSL"), topics={"t": ("WRITE",)}, timeout_s=2)


def test_plaintext_answered_with_a_tls_alert_is_a_tls_listener():
    def tls_alert(conn: socket.socket) -> None:  # what Kafka's TLS listener sends back
        conn.recv(1024)
        conn.sendall(bytes.fromhex("15030300020250"))

    for bootstrap in _serve(tls_alert):
        with pytest.raises(KafkaAccessError, match="the listener expects TLS") as e:
            check_access(bootstrap, _client("SASL_PLAINTEXT"), timeout_s=2)
    assert "use SASL_SSL" in str(e.value)


def test_ssl_on_a_listener_that_offers_sasl_mechanisms_is_a_sasl_listener(server_tls):
    for bootstrap in _serve(lambda c: _kafka(c, handshake=(0, ["SCRAM-SHA-512"])),
                            tls=server_tls):
        with pytest.raises(KafkaAccessError, match="the listener expects SASL") as e:
            check_access(bootstrap, _client("SSL"), timeout_s=2)
    assert "SCRAM-SHA-512" in str(e.value) and "use SASL_SSL" in str(e.value)


def test_an_ssl_listener_without_sasl_lets_an_ssl_client_in(server_tls):
    for bootstrap in _serve(lambda c: _kafka(c, handshake=(34, [])), tls=server_tls):
        check_access(bootstrap, _client("SSL"), timeout_s=2)


def test_sasl_on_a_listener_without_sasl_is_named(server_tls):
    for bootstrap in _serve(lambda c: _kafka(c, handshake=(34, [])), tls=server_tls):
        with pytest.raises(KafkaAccessError, match="does not speak SASL on that listener"):
            check_access(bootstrap, _client("SASL_SSL"), timeout_s=2)


def test_bootstrap_servers_are_read_as_kafka_python_reads_them():
    assert _servers("kafka, SASL_SSL://b:9093,[::1]:9094") == [
        ("kafka", 9092, "kafka"), ("b", 9093, "SASL_SSL://b:9093"), ("::1", 9094, "[::1]:9094")]
    with pytest.raises(KafkaAccessError) as e:
        check_access("kafka:notaport", _client("SASL_SSL"), timeout_s=2)
    assert "MOLSTREAM_KAFKA_BOOTSTRAP" in str(e.value) and "\n" not in str(e.value)
