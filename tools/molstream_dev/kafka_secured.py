"""A Kafka broker secured as Strimzi runs one: TLS listeners with certificates of the test CA
(certs.test_ca), SASL/SCRAM and PLAIN users, mTLS users, and an authorizer that denies what no
ACL allows. The same Apache jars as KafkaServer.

    with SecuredKafkaServer() as kafka:
        kafka.bootstrap            # SASL_SSL (SCRAM-SHA-512, SCRAM-SHA-256, PLAIN)
        kafka.ssl_bootstrap        # SSL, client certificate required (mTLS)
        kafka.client_env("molstream")            # MOLSTREAM_KAFKA_* for a SASL_SSL client
        kafka.client_env("molstream", mtls=True)  # ... for an SSL client with user.crt/user.key

Listeners, all on 127.0.0.1: SASL_SSL (clients; inter-broker over PLAIN as the super user
`admin`), SSL with `ssl.client.auth=required` (clients; the principal is the certificate's
subject, `CN=<name>`, as Strimzi's TLS users), and CONTROLLER, SASL_SSL with PLAIN (its
credentials are static: a SCRAM credential lives in the metadata log the controller serves).
SCRAM users and ACLs are created over the admin API (as `admin`, over PLAIN) once the broker
serves; both live in the metadata log, kept across restarts.

Users and what they may do (topics and groups under TOPIC_PREFIX, PREFIXED patterns):
* `admin`: super user;
* `molstream` (SCRAM and PLAIN) and `CN=molstream-mtls` (mTLS): what molstream's components
  need: Describe, Read, Write, Create on the topics, Read on the groups;
* `nowrite`: the same without Write; `nogroup`: the same without any group.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from ._process import ServiceError, free_port
from .certs import issue_cert, test_ca
from .kafka import KafkaServer

#: The test topics and consumer groups the users' ACLs cover start with this.
TOPIC_PREFIX = "sec"
MTLS_USER = "molstream-mtls"
#: The broker's certificate names 127.0.0.1 only: "localhost" is a name it does not carry.
BROKER_CERT = "molstream-test-kafka-ip"
_SCRAM = ("SCRAM-SHA-512", "SCRAM-SHA-256")
_ALL_OPS = ("DESCRIBE", "READ", "WRITE", "CREATE")
#: user → (operations on the topics, whether it may Read the groups)
_GRANTS = {
    "molstream": (_ALL_OPS, True),
    f"CN={MTLS_USER}": (_ALL_OPS, True),
    "nowrite": (("DESCRIBE", "READ", "CREATE"), True),
    "nogroup": (_ALL_OPS, False),
}


@dataclass(frozen=True)
class User:
    name: str
    password: str


class SecuredKafkaServer(KafkaServer):
    name = "kafka-secured"

    def __init__(self, *, port: int | None = None, ssl_port: int | None = None,
                 controller_port: int | None = None, data_dir: Path | None = None,
                 heap: str = "768m", extra_config: dict[str, str] | None = None) -> None:
        super().__init__(port=port, controller_port=controller_port, data_dir=data_dir,
                         heap=heap, extra_config=extra_config)
        self.ssl_port = ssl_port or free_port()
        self.ca_file, _ = test_ca()
        self._cert, self._key = issue_cert(BROKER_CERT, sans=("IP:127.0.0.1",))
        self.mtls_cert, self.mtls_key = issue_cert(MTLS_USER, client=True)
        self.users = {name: User(name, secrets.token_urlsafe(12))
                      for name in ("admin", "molstream", "nowrite", "nogroup")}
        self._users_done = False

    @property
    def ssl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ssl_port}"

    def ports(self) -> list[int]:
        return [self.port, self.ssl_port, self.controller_port]

    def config(self) -> dict[str, str]:
        admin = self.users["admin"]
        plain_users = " ".join(f'user_{u.name}="{u.password}"' for u in self.users.values())
        plain = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
                 f'username="admin" password="{admin.password}" {plain_users};')
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        return {
            **super().config(),
            "listeners": f"SASL_SSL://127.0.0.1:{self.port},SSL://127.0.0.1:{self.ssl_port},"
                         f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"SASL_SSL://127.0.0.1:{self.port},"
                                    f"SSL://127.0.0.1:{self.ssl_port}",
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:SASL_SSL",
            "inter.broker.listener.name": "SASL_SSL",
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": ",".join((*_SCRAM, "PLAIN")),
            "listener.name.sasl_ssl.plain.sasl.jaas.config": plain,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram,
            "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": scram,
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": plain,
            "listener.name.ssl.ssl.client.auth": "required",
            # PEM inline: a key in a file needs a password (ssl.key.password), inline it
            # may be unencrypted. Escaped newlines: the properties file holds one line each.
            "ssl.keystore.type": "PEM",
            "ssl.keystore.certificate.chain": _one_line(self._cert.read_text()),
            "ssl.keystore.key": _one_line(self._key.read_text()),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:admin",
            "allow.everyone.if.no.acl.found": "false",
        }

    def admin_config(self) -> dict:
        return self.client_config("admin", mechanism="PLAIN")  # admin has no SCRAM credential

    def client_config(self, user: str, *, mtls: bool = False,
                      mechanism: str = "SCRAM-SHA-512") -> dict:
        """kafka-python settings of a client connecting as `user` (mtls: over the SSL
        listener with the mTLS user's certificate; `user` is ignored)."""
        if mtls:
            return {"bootstrap_servers": self.ssl_bootstrap, "security_protocol": "SSL",
                    "ssl_cafile": str(self.ca_file), "ssl_certfile": str(self.mtls_cert),
                    "ssl_keyfile": str(self.mtls_key)}
        return {"bootstrap_servers": self.bootstrap, "security_protocol": "SASL_SSL",
                "ssl_cafile": str(self.ca_file), "sasl_mechanism": mechanism,
                "sasl_plain_username": user, "sasl_plain_password": self.users[user].password}

    def client_env(self, user: str = "molstream", *, mtls: bool = False,
                   mechanism: str = "SCRAM-SHA-512") -> dict[str, str]:
        """The MOLSTREAM_KAFKA_* variables of a molstream component connecting as `user`."""
        if mtls:
            return {"MOLSTREAM_KAFKA_BOOTSTRAP": self.ssl_bootstrap,
                    "MOLSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL",
                    "MOLSTREAM_KAFKA_CA_FILE": str(self.ca_file),
                    "MOLSTREAM_KAFKA_CERT_FILE": str(self.mtls_cert),
                    "MOLSTREAM_KAFKA_KEY_FILE": str(self.mtls_key)}
        return {"MOLSTREAM_KAFKA_BOOTSTRAP": self.bootstrap,
                "MOLSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "MOLSTREAM_KAFKA_SASL_MECHANISM": mechanism,
                "MOLSTREAM_KAFKA_SASL_USERNAME": user,
                "MOLSTREAM_KAFKA_SASL_PASSWORD": self.users[user].password,
                "MOLSTREAM_KAFKA_CA_FILE": str(self.ca_file)}

    def ready(self) -> None:
        super().ready()
        if not self._users_done:  # kept in the metadata log across restarts
            self._create_users()
            self._users_done = True

    def _create_users(self) -> None:
        from kafka import KafkaAdminClient
        from kafka.admin import (
            ACL,
            ACLOperation,
            ACLPermissionType,
            ACLResourcePatternType,
            ResourcePattern,
            ResourceType,
            UserScramCredentialUpsertion,
        )

        def allow(principal: str, op: str, kind: ResourceType) -> ACL:
            return ACL(f"User:{principal}", "*", ACLOperation[op], ACLPermissionType.ALLOW,
                       ResourcePattern(kind, TOPIC_PREFIX, ACLResourcePatternType.PREFIXED))

        acls = []
        for principal, (topic_ops, groups) in _GRANTS.items():
            acls += [allow(principal, op, ResourceType.TOPIC) for op in topic_ops]
            if groups:
                acls.append(allow(principal, "READ", ResourceType.GROUP))
        users = [u for u in self.users.values() if u.name != "admin"]
        admin = KafkaAdminClient(**self.admin_config(), client_id="molstream-dev")
        try:
            refused = {}
            for m in _SCRAM:  # one mechanism of a user per request
                done = admin.alter_user_scram_credentials(
                    [UserScramCredentialUpsertion(u.name, m, u.password) for u in users])
                refused.update({u: e for u, e in done.items() if e})
            failed = admin.create_acls(acls)["failed"]
        finally:
            admin.close()
        if refused or failed:
            raise ServiceError(f"kafka: users not created: {refused or failed}", self.log)
        self._wait_for_scram()

    def _wait_for_scram(self) -> None:
        """The broker applies the credentials from the metadata log a moment after the
        controller committed them: wait until a SCRAM login works."""
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        deadline = time.monotonic() + 30
        while True:
            try:
                KafkaAdminClient(**self.client_config("molstream"), client_id="molstream-dev",
                                 request_timeout_ms=5000).close()
                return
            except KafkaError as e:
                if time.monotonic() > deadline:
                    raise ServiceError(f"kafka: SCRAM login still refused: {e}",
                                       self.log) from None
                time.sleep(0.2)


def _one_line(pem: str) -> str:
    return pem.strip().replace("\n", "\\n")
