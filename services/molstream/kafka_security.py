"""How every molstream component (fetcher, worker, the operator's event consumer) connects to a
secured Kafka: TLS with a CA and hostname verification, SASL (SCRAM-SHA-512, SCRAM-SHA-256,
PLAIN), mTLS client certificates. Read from the environment, in the shapes Strimzi's Secrets
hold them (the cluster CA Secret's `ca.crt`; a KafkaUser Secret's `password`,
`sasl.jaas.config`, `user.crt`, `user.key`):

    MOLSTREAM_KAFKA_SECURITY_PROTOCOL   PLAINTEXT (default) | SSL | SASL_SSL | SASL_PLAINTEXT
    MOLSTREAM_KAFKA_SASL_MECHANISM      SCRAM-SHA-512 (default) | SCRAM-SHA-256 | PLAIN
    MOLSTREAM_KAFKA_SASL_USERNAME, MOLSTREAM_KAFKA_SASL_PASSWORD or _PASSWORD_FILE
    MOLSTREAM_KAFKA_SASL_JAAS_CONFIG_FILE   username and password parsed from it when unset
    MOLSTREAM_KAFKA_CA_FILE             PEM; unset: the system's CAs
    MOLSTREAM_KAFKA_CERT_FILE, MOLSTREAM_KAFKA_KEY_FILE   mTLS
    MOLSTREAM_KAFKA_CHECK_HOSTNAME      default true

The files are read (and the CA, the certificate and its key loaded as TLS will load them)
when the settings are: a file that is not what its variable needs is named then, not taken
for an unreachable broker later. `KafkaSecurity.reloaded()` reads them again: a Secret
volume's files change in place when the Secret does (a password fixed, or rotated).

A refusal by Kafka (a wrong password, a certificate not trusted, a missing ACL) is not an
outage: waiting does not mend it. `explain_kafka_error` turns kafka-python's error into one
line naming the problem, and returns None for everything else (an outage is ridden out).
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_SSL", "SASL_PLAINTEXT")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
_V = "MOLSTREAM_KAFKA_"

__all__ = ["KafkaAccessError", "KafkaSecurity", "explain_kafka_error", "newer_credentials",
           "MECHANISMS", "PROTOCOLS"]


class KafkaAccessError(RuntimeError):
    """Kafka refused this client: authentication, certificate or authorization. Permanent:
    the same settings fail the same way again. The message is one line, without secrets.
    `login`: it refused the SASL login (a wrong password, an unknown user)."""

    def __init__(self, message: str, *, login: bool = False) -> None:
        super().__init__(message)
        self.login = login


@dataclass(frozen=True, kw_only=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    check_hostname: bool = True
    #: The MOLSTREAM_KAFKA_* variables these settings were read from (for reloaded()).
    source: Mapping[str, str] | None = field(default=None, repr=False, compare=False)

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def principal(self) -> str:
        """Who Kafka's ACLs see: the SASL user, the client certificate's subject (mTLS, as
        Strimzi names a TLS user: CN=...), or ANONYMOUS."""
        if self.sasl:
            return self.username
        if self.cert_file is not None:
            return _subject(self.cert_file)
        return "ANONYMOUS"

    def describe(self) -> str:
        """For a log line: the protocol and who connects (never the password)."""
        if self.sasl:
            return f"{self.protocol} {self.sasl_mechanism} as user {self.username!r}"
        if self.cert_file is not None:
            return f"{self.protocol} with the client certificate of {self.principal!r}"
        return self.protocol

    def reloaded(self) -> KafkaSecurity:
        """The settings read again from the same variables, with the files as they are now
        (ValueError as from_env); the same settings when they were not read from any."""
        return self if self.source is None else KafkaSecurity.from_env(self.source)

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context kafka-python builds from the same settings (KafkaSSLTransport);
        ValueError naming the variable when a file is not what it needs."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = self.check_hostname
        if self.ca_file is not None:
            try:
                ctx.load_verify_locations(self.ca_file)
            except (ssl.SSLError, OSError) as e:
                raise ValueError(f"{_V}CA_FILE: {self.ca_file} holds no certificate TLS can "
                                 f"use ({_reason(e)})") from None
        else:
            ctx.load_default_certs()
        if self.cert_file is not None:
            try:
                ctx.load_cert_chain(self.cert_file, self.key_file)
            except (ssl.SSLError, OSError) as e:
                raise ValueError(f"{_V}CERT_FILE and {_V}KEY_FILE are not a certificate and "
                                 f"its key ({_reason(e)})") from None
        return ctx

    def client_kwargs(self) -> dict:
        """Settings for kafka-python's KafkaProducer, KafkaConsumer and KafkaAdminClient."""
        kwargs: dict = {"security_protocol": self.protocol}
        if self.tls:
            kwargs["ssl_check_hostname"] = self.check_hostname
            if self.ca_file is not None:
                kwargs["ssl_cafile"] = str(self.ca_file)
            if self.cert_file is not None:
                kwargs["ssl_certfile"] = str(self.cert_file)
                kwargs["ssl_keyfile"] = str(self.key_file)
        if self.sasl:
            kwargs.update(sasl_mechanism=self.sasl_mechanism,
                          sasl_plain_username=self.username,
                          sasl_plain_password=self.password)
        return kwargs

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KafkaSecurity:
        """The settings, checked: ValueError with one line naming the variable."""
        env = {k: v for k, v in (os.environ if environ is None else environ).items()
               if k.startswith(_V)}

        def get(name: str) -> str:
            return env.get(_V + name, "").strip()

        protocol = _choice(get("SECURITY_PROTOCOL") or "PLAINTEXT", PROTOCOLS,
                           "SECURITY_PROTOCOL")
        mechanism = get("SASL_MECHANISM")
        username, password = get("SASL_USERNAME"), env.get(_V + "SASL_PASSWORD", "")
        if password and get("SASL_PASSWORD_FILE"):
            raise ValueError(f"set {_V}SASL_PASSWORD or {_V}SASL_PASSWORD_FILE, not both")
        if get("SASL_PASSWORD_FILE"):
            password = _read("SASL_PASSWORD_FILE", get("SASL_PASSWORD_FILE")).rstrip("\r\n")
        module = ""
        if get("SASL_JAAS_CONFIG_FILE"):
            module, jaas = parse_jaas_config(
                _read("SASL_JAAS_CONFIG_FILE", get("SASL_JAAS_CONFIG_FILE")))
            username = username or jaas.get("username", "")
            password = password or jaas.get("password", "")
            if not mechanism and module.endswith("PlainLoginModule"):
                mechanism = "PLAIN"
        mechanism = _choice(mechanism or "SCRAM-SHA-512", MECHANISMS, "SASL_MECHANISM")
        _check_login_module(module, mechanism)
        ca, cert, key = (_pem_file(name, get(name), marker) for name, marker in
                         (("CA_FILE", "CERTIFICATE"), ("CERT_FILE", "CERTIFICATE"),
                          ("KEY_FILE", "PRIVATE KEY")))
        security = cls(protocol=protocol, sasl_mechanism=mechanism, username=username,
                       password=password, ca_file=ca, cert_file=cert, key_file=key,
                       check_hostname=_bool(get("CHECK_HOSTNAME"), "CHECK_HOSTNAME"),
                       source=env)
        security._check(sasl_given=bool(username or password))
        return security

    def _check(self, *, sasl_given: bool) -> None:
        p = f"{_V}SECURITY_PROTOCOL={self.protocol}"
        if self.sasl and not (self.username and self.password):
            raise ValueError(f"{p} needs {_V}SASL_USERNAME and {_V}SASL_PASSWORD (or "
                             f"{_V}SASL_PASSWORD_FILE, or {_V}SASL_JAAS_CONFIG_FILE)")
        if sasl_given and not self.sasl:
            raise ValueError(f"a SASL user is set but {p}: use SASL_SSL (or SASL_PLAINTEXT)")
        files = [n for n, f in (("CA_FILE", self.ca_file), ("CERT_FILE", self.cert_file),
                                ("KEY_FILE", self.key_file)) if f is not None]
        if files and not self.tls:
            raise ValueError(f"{_V}{files[0]} is set but {p} has no TLS: use SSL or SASL_SSL")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError(f"mTLS needs both {_V}CERT_FILE and {_V}KEY_FILE")
        if self.tls:
            self.ssl_context()  # the CA, the certificate and its key load as TLS loads them


_LOGIN_MODULES = {"PlainLoginModule": ("PLAIN",),
                  "ScramLoginModule": ("SCRAM-SHA-512", "SCRAM-SHA-256")}


def _check_login_module(module: str, mechanism: str) -> None:
    """A JAAS file's login module and the mechanism agree: PLAIN's user is not SCRAM's."""
    for name, mechanisms in _LOGIN_MODULES.items():
        if module.endswith(name) and mechanism not in mechanisms:
            raise ValueError(f"{_V}SASL_JAAS_CONFIG_FILE holds a {name} but "
                             f"{_V}SASL_MECHANISM={mechanism}: use {' or '.join(mechanisms)}, "
                             "or the JAAS config of that mechanism")


def newer_credentials(exc: BaseException, security: KafkaSecurity) -> KafkaSecurity | None:
    """The settings read again, when `exc` is Kafka refusing the SASL login of `security` and
    their files hold another user or password by now (a Secret fixed, or rotated as Strimzi
    does, since they were read); else None. Such a refusal is not permanent: a new login with
    the files as they are (a new connection, the Job's next Pod) may well be let in."""
    from kafka import errors as kerrors

    refused = (isinstance(exc, kerrors.SaslAuthenticationFailedError)
               or isinstance(exc, KafkaAccessError) and exc.login)
    if not (refused and security.sasl):
        return None
    try:
        fresh = security.reloaded()
    except ValueError:  # (not readable now: the refusal stands)
        return None
    same = (fresh.username, fresh.password) == (security.username, security.password)
    return None if same else fresh


def parse_jaas_config(text: str) -> tuple[str, dict[str, str]]:
    """(login module, options) of a `sasl.jaas.config` value, as a Strimzi KafkaUser Secret
    holds it: `org.apache.kafka.common.security.scram.ScramLoginModule required
    username="u" password="p";`. Never echoes the text (it holds the password)."""
    head = re.match(r"\s*([\w.$]+)\s+(required|requisite|sufficient|optional)\b", text)
    if head is None:
        raise ValueError(f"{_V}SASL_JAAS_CONFIG_FILE: not a JAAS login module line "
                         "(<LoginModule> required username=\"...\" password=\"...\";)")
    options = {m[1]: m[2] if m[2] is not None else m[3] for m in
               re.finditer(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s";]+))',
                            text[head.end():])}
    return head[1], options


def explain_kafka_error(exc: BaseException, security: KafkaSecurity | None = None, *,
                        bootstrap: str = "") -> str | None:
    """One line naming why Kafka refused this client, or None when `exc` is not a refusal
    (an outage, a timeout: worth waiting for)."""
    from kafka import errors as kerrors  # not at import: the settings are read by every command

    s = security or KafkaSecurity()
    at = f" at {bootstrap}" if bootstrap else ""
    who = s.principal
    if isinstance(exc, kerrors.SaslAuthenticationFailedError):
        return (f"Kafka{at} refused the SASL login of user {s.username!r} "
                f"({s.sasl_mechanism}): wrong password or unknown user")
    if isinstance(exc, kerrors.UnsupportedSaslMechanismError):
        offered = str(exc).rpartition("Enabled mechanisms:")[2].strip()
        return (f"Kafka{at} does not offer SASL mechanism {s.sasl_mechanism} "
                f"({_V}SASL_MECHANISM)" + (f"; it offers {offered}" if offered else ""))
    if isinstance(exc, kerrors.GroupAuthorizationFailedError):
        return f"Kafka denies user {who!r} Read on consumer group {_name(exc)!r}: grant the ACL"
    if isinstance(exc, kerrors.TopicAuthorizationFailedError):
        return f"Kafka denies user {who!r} access to topic {_name(exc)!r}: grant the ACL"
    if (isinstance(exc, kerrors.ClusterAuthorizationFailedError)
            or "ClusterAuthorizationFailed" in str(exc)):
        # What an idempotent producer without Write meets first (InitProducerId).
        return (f"Kafka denies user {who!r} IdempotentWrite on the cluster: grant Write on "
                "the topics it produces to")
    if isinstance(exc, kerrors.AuthorizationError):
        return f"Kafka denies user {who!r} an operation ({type(exc).__name__}): grant the ACL"
    return _explain_tls(exc, s, at)


def _explain_tls(exc: BaseException, s: KafkaSecurity, at: str) -> str | None:
    """kafka-python wraps a failed TLS handshake in KafkaConnectionError; the SSL error is
    its __context__ (or only its text)."""
    cause = exc if isinstance(exc, ssl.SSLError) else exc.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        if cause.verify_code in (62, 64):  # X509_V_ERR_HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH
            return (f"Kafka's certificate{at} does not carry the name the client connected "
                    f"to ({cause.verify_message.rstrip('.')}): use a bootstrap address it "
                    "names")
        if cause.verify_code in (9, 10):  # X509_V_ERR_CERT_NOT_YET_VALID, _HAS_EXPIRED
            return (f"Kafka's certificate{at} {cause.verify_message}: the broker's "
                    "certificate needs renewing (or this machine's clock is wrong)")
        where = (f"the CA in {_V}CA_FILE" if s.ca_file is not None else
                 f"a CA this system trusts (set {_V}CA_FILE: Strimzi's cluster CA, ca.crt)")
        return (f"Kafka's certificate{at} is not signed by {where} "
                f"({cause.verify_message})")
    text = f"{exc} {cause or ''}".upper()
    if any(a in text for a in ("ALERT_BAD_CERTIFICATE", "CERTIFICATE_REQUIRED",
                               "ALERT_UNKNOWN_CA", "ALERT_CERTIFICATE_UNKNOWN")):
        if s.cert_file is None:
            return (f"Kafka{at} requires a client certificate (mTLS): set {_V}CERT_FILE and "
                    f"{_V}KEY_FILE (Strimzi: the KafkaUser Secret's user.crt, user.key)")
        return (f"Kafka{at} refused the client certificate of {s.principal!r} "
                f"({_V}CERT_FILE): not signed by a CA the broker trusts")
    if "WRONG_VERSION_NUMBER" in text or "RECORD_LAYER_FAILURE" in text:
        return (f"Kafka{at} does not speak TLS on that port: {_V}SECURITY_PROTOCOL="
                f"{s.protocol} needs a TLS listener")
    return None


def _name(exc: BaseException) -> str:
    """The topic or group an authorization error names: kafka-python gives it as the whole
    message, or inside a request's repr (name='...')."""
    text = str(exc)
    found = re.search(r"(?:name|group_id|topic)='([^']+)'", text)
    if found:
        return found[1]
    arg = str(exc.args[0]) if exc.args else ""  # str(exc) is "[Error 29] <class>: <name>"
    return arg if arg and " " not in arg else "?"


def _subject(cert: Path) -> str:
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(cert.read_bytes()).subject.rfc4514_string()
    except (OSError, ValueError):
        return "?"


def _choice(value: str, allowed: tuple[str, ...], name: str) -> str:
    normal = value.strip().upper().replace("_", "-") if name == "SASL_MECHANISM" else \
        value.strip().upper()
    if normal not in allowed:
        raise ValueError(f"{_V}{name} must be one of {', '.join(allowed)}, not {value!r}")
    return normal


def _bool(value: str, name: str) -> bool:
    if value.lower() in ("", "1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{_V}{name} must be true or false, not {value!r}")


def _reason(e: BaseException) -> str:
    """An ssl or OS error's reason, short: "PEM lib", "No such file or directory"."""
    if isinstance(e, ssl.SSLError):
        text = e.reason or str(e.args[-1] if e.args else e)
        return re.sub(r"\s*\(_ssl\.c:\d+\)$", "", text)
    return getattr(e, "strerror", None) or type(e).__name__


def _read(name: str, path: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"{_V}{name}: cannot read {path}: {_reason(e)}") from None
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ValueError(f"{_V}{name}: {path} is not text{_der(data, name, path)}") from None


def _der(data: bytes, name: str, path: str) -> str:
    """What to do with a binary file where PEM is expected: DER starts with a SEQUENCE
    (0x30) of a long length (0x81-0x84)."""
    if len(data) < 2 or data[0] != 0x30 or not 0x81 <= data[1] <= 0x84:
        return ""
    command = "pkey" if name == "KEY_FILE" else "x509"
    return (f" but DER; PEM is needed: openssl {command} -inform der -in {path} "
            f"-out {Path(path).stem}.pem")


def _pem_file(name: str, path: str, marker: str) -> Path | None:
    if not path:
        return None
    if f"{marker}-----" not in _read(name, path):  # BEGIN (RSA |EC )PRIVATE KEY too
        raise ValueError(f"{_V}{name}: {path} holds no PEM {marker.lower()}")
    return Path(path)
