"""One look at Kafka before a component starts: is this client let in, and may it do what it
needs? A refusal raises KafkaAccessError with one line naming it, at once.

Why a probe: kafka-python 3 retries a refused connection (a wrong password, a certificate not
trusted, a client certificate missing) like an unreachable broker, until its bootstrap times
out, and then says only "Unable to bootstrap"; the reason is at best in a log line (and a SASL
refusal is often lost: the broker closes the connection right after its answer, and
kafka-python drops data read together with the close). So the probe logs in itself, on one
blocking connection (kafka-python's own request classes and SASL mechanisms), and sees the
TLS error or the broker's answer as they are, and a listener of another kind for what it is,
on its own evidence only: plaintext spoken to a TLS listener gets a TLS alert back (bytes
starting with a TLS record header), a SASL listener answers a SaslHandshake with its
mechanisms, a listener without SASL with ILLEGAL_SASL_STATE. An ACL missing for a topic
or a group shows in the operations Kafka says this client is authorized for (KIP-430), before
anything is sent: a consumer without Read on its topic would otherwise wait silently forever.

A broker that does not answer is not a refusal: the probe returns and the component rides
out the outage as it always has. A connection closed or reset without a word is such an
outage too (a load balancer without a healthy target, a sidecar whose upstream is down, a
broker in its controlled shutdown, max.connections.per.ip), whatever the protocol.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Iterable, Mapping

from kafka import KafkaAdminClient
from kafka import errors as kerrors
from kafka.cluster import collect_hosts
from kafka.net.sasl import get_sasl_mechanism
from kafka.protocol.metadata import ApiVersionsRequest
from kafka.protocol.parser import KafkaProtocol
from kafka.protocol.sasl import SaslAuthenticateRequest, SaslHandshakeRequest

from .kafka_security import (
    KafkaAccessError,
    KafkaSecurity,
    explain_kafka_error,
    newer_credentials,
)

log = logging.getLogger(__name__)

__all__ = ["check_access"]

#: How long the probe waits for one broker's answers; past this it is taken as unreachable,
#: which the component's own retries ride out.
PROBE_TIMEOUT_S = 10.0

_ILLEGAL_SASL_STATE = 34  # a SaslHandshake on a listener without SASL
_UNSUPPORTED_SASL_MECHANISM = 33


def check_access(bootstrap: str, security: KafkaSecurity, *,
                 topics: Mapping[str, Iterable[str]] | None = None,
                 groups: Iterable[str] = (), timeout_s: float = PROBE_TIMEOUT_S
                 ) -> KafkaSecurity:
    """Raise KafkaAccessError when Kafka refuses `security`'s client, or denies it an
    operation it needs: `topics` maps a topic to operations (READ, WRITE, DESCRIBE, CREATE),
    `groups` must allow READ. PLAINTEXT clients are not probed (no login to refuse).

    Returns the settings to connect with: `security`, or, when Kafka refused its SASL login
    and the settings' files hold another password by now (a Secret fixed or rotated since
    they were read), those read again, once they were let in."""
    if security.protocol == "PLAINTEXT":
        return security
    try:
        answered = _logged_in(bootstrap, security, timeout_s)
    except KafkaAccessError as e:
        fresh = newer_credentials(e, security)
        if fresh is None:
            raise
        log.warning("%s; the password file holds another password by now: logging in with "
                    "that", e)
        security = fresh
        answered = _logged_in(bootstrap, security, timeout_s)
    groups = list(groups)
    if not answered or not topics and not groups:
        return security
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="molstream-probe",
                                 request_timeout_ms=int(timeout_s * 1000),
                                 **security.client_kwargs())
    except kerrors.KafkaError as e:  # went away since the login: not a refusal
        log.debug("kafka access probe: %s", e)
        return security
    try:
        if topics:
            _check_topics(admin, security, topics)
        for group in groups:
            _check_group(admin, security, group)
    except kerrors.KafkaError as e:
        line = explain_kafka_error(e, security, bootstrap=bootstrap)
        if line:
            raise KafkaAccessError(line) from None
        log.debug("kafka access probe: %s", e)
    finally:
        admin.close()
    return security


def _logged_in(bootstrap: str, security: KafkaSecurity, timeout_s: float) -> bool:
    """True once one bootstrap server let this client in; False when none answered."""
    tls = _tls_context(security) if security.tls else None  # (settings: not an outage)
    for host, port, server in _servers(bootstrap):
        try:
            with socket.create_connection((host, port), timeout=timeout_s) as raw:
                _log_in(raw, tls, host, server, security, timeout_s)
                return True
        except KafkaAccessError:
            raise
        except ssl.SSLError as e:  # a certificate refused, either way
            line = explain_kafka_error(e, security, bootstrap=server)
            if line:
                raise KafkaAccessError(line) from None
            log.debug("kafka access probe: %s: %s", server, e)
        except (OSError, ValueError, kerrors.KafkaError) as e:  # unreachable, cut: an outage
            log.debug("kafka access probe: %s: %s", server, e)
    return False


def _servers(bootstrap: str) -> list[tuple[str, int, str]]:
    """(host, port, as written) of each bootstrap server, read as kafka-python reads them (a
    server without a port is on 9092, a leading SASL_SSL:// is dropped)."""
    servers = []
    for server in (s.strip() for s in bootstrap.split(",") if s.strip()):
        try:
            [(host, port, _)] = collect_hosts(server, randomize=False)
        except ValueError:
            raise KafkaAccessError(f"MOLSTREAM_KAFKA_BOOTSTRAP: {server!r} is not host:port "
                                   "(e.g. kafka:9092)") from None
        servers.append((host, port, server))
    if not servers:
        raise KafkaAccessError("MOLSTREAM_KAFKA_BOOTSTRAP is empty (host:port, e.g. kafka:9092)")
    return servers


def _log_in(raw: socket.socket, tls: ssl.SSLContext | None, host: str, server: str,
            security: KafkaSecurity, timeout_s: float) -> None:
    sock = tls.wrap_socket(raw, server_hostname=host) if tls is not None else raw
    try:
        _exchange(sock, host, server, security, timeout_s)
    finally:
        sock.close()  # (the TLS socket took over `raw`: closing that closes nothing)


def _exchange(sock: socket.socket, host: str, server: str, security: KafkaSecurity,
              timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    protocol = KafkaProtocol(client_id="molstream-probe")
    head = bytearray()  # the first bytes the server sent

    def call(request):
        protocol.send_request(request)
        sock.sendall(protocol.send_bytes())
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:  # without a word: an outage, a restart (OSError: ridden out)
                raise ConnectionError(f"{server} closed the connection")
            if len(head) < 2:
                head.extend(data[:2 - len(head)])
                if not security.tls and _tls_record(head):
                    # A TLS listener answers plaintext with a TLS alert (15 03 ..), not
                    # Kafka's size prefix (no answer here is 350 MB long), and hangs up.
                    raise KafkaAccessError(
                        f"Kafka at {server} answered in TLS: the listener expects TLS "
                        f"(MOLSTREAM_KAFKA_SECURITY_PROTOCOL={security.protocol}: use "
                        f"{'SASL_SSL' if security.sasl else 'SSL'})")
            for _, response in protocol.receive_bytes(data):
                return response
        raise TimeoutError(f"{server} did not answer")

    call(ApiVersionsRequest(version=0))  # where TLS 1.3 hears of a refused client certificate
    # A SASL listener answers a SaslHandshake with the mechanisms it offers, a listener
    # without SASL with ILLEGAL_SASL_STATE.
    offered = call(SaslHandshakeRequest(mechanism=security.sasl_mechanism, version=1))
    sasl_listener = offered.error_code in (0, _UNSUPPORTED_SASL_MECHANISM)
    if not security.sasl:
        if sasl_listener:
            raise KafkaAccessError(
                f"Kafka at {server} asks for a SASL login ({', '.join(offered.mechanisms)}): "
                f"the listener expects SASL (MOLSTREAM_KAFKA_SECURITY_PROTOCOL="
                f"{security.protocol}: use SASL_{'SSL' if security.tls else 'PLAINTEXT'})")
        return
    if offered.error_code == _ILLEGAL_SASL_STATE:
        raise KafkaAccessError(
            f"Kafka at {server} does not speak SASL on that listener: "
            f"MOLSTREAM_KAFKA_SECURITY_PROTOCOL={security.protocol} needs a SASL listener "
            f"(or use {'SSL' if security.tls else 'PLAINTEXT'} without a SASL user)")

    def refused(error: Exception):
        return KafkaAccessError(explain_kafka_error(error, security, bootstrap=server),
                                login=isinstance(error, kerrors.SaslAuthenticationFailedError))

    if security.sasl_mechanism not in offered.mechanisms:
        raise refused(kerrors.UnsupportedSaslMechanismError(
            f"Enabled mechanisms: {', '.join(offered.mechanisms)}"))
    mechanism = get_sasl_mechanism(security.sasl_mechanism)(host=host,
                                                             **security.client_kwargs())
    while not mechanism.is_done():
        answer = call(SaslAuthenticateRequest(auth_bytes=mechanism.auth_bytes(), version=1))
        if answer.error_code:
            raise refused(kerrors.SaslAuthenticationFailedError(answer.error_message))
        mechanism.receive(answer.auth_bytes)
    if not mechanism.is_authenticated():
        raise refused(kerrors.SaslAuthenticationFailedError("server signature not verified"))


def _tls_record(head: bytes) -> bool:
    """Whether bytes start like a TLS record: an alert (0x15) or a handshake (0x16), 3.x."""
    return len(head) >= 2 and head[0] in (0x15, 0x16) and head[1] == 0x03


def _tls_context(security: KafkaSecurity) -> ssl.SSLContext:
    """Built before connecting: a file TLS cannot use is in the settings, not an outage."""
    try:
        return security.ssl_context()
    except ValueError as e:
        raise KafkaAccessError(str(e)) from None


def _check_topics(admin: KafkaAdminClient, security: KafkaSecurity,
                  topics: Mapping[str, Iterable[str]]) -> None:
    for described in admin.describe_topics(list(topics)):
        name = described["name"]
        allowed = described.get("authorized_operations")
        if described.get("error_code") == 29:  # TOPIC_AUTHORIZATION_FAILED: not even Describe
            allowed = []
        if allowed is None:  # the broker did not say (no authorizer)
            continue
        for op in topics[name]:
            if op.upper() not in allowed and "ALL" not in allowed:
                raise KafkaAccessError(
                    f"Kafka denies user {security.principal!r} {op.capitalize()} on topic "
                    f"{name!r}: grant the ACL")


def _check_group(admin: KafkaAdminClient, security: KafkaSecurity, group: str) -> None:
    try:
        described = admin.describe_groups([group], include_authorized_operations=True)
    except kerrors.GroupAuthorizationFailedError:
        allowed: list[str] | None = []
    else:
        allowed = (described.get(group) or {}).get("authorized_operations")
    if allowed is not None and "READ" not in allowed and "ALL" not in allowed:
        raise KafkaAccessError(f"Kafka denies user {security.principal!r} Read on consumer "
                               f"group {group!r}: grant the ACL")
