"""Kafka settings that cannot work together are refused when read, in one line naming them;
an expired broker certificate is called expired; the settings' files can be read again (a
Secret volume's files change in place when the Secret does); the operator says a wrong
MOLSTREAM_KAFKA_* value in one line, like the fetcher and the worker."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys

import pytest
from kafka import errors as kerrors
from molstream.kafka_security import KafkaSecurity, explain_kafka_error

V = "MOLSTREAM_KAFKA_"
PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'username="u" password="p";')
SCRAM_JAAS = ('org.apache.kafka.common.security.scram.ScramLoginModule required '
              'username="u" password="p";')


@pytest.mark.parametrize(("jaas", "mechanism"), [(PLAIN_JAAS, "SCRAM-SHA-512"),
                                                 (SCRAM_JAAS, "PLAIN")])
def test_a_jaas_login_module_of_another_mechanism_is_refused_naming_both(tmp_path, jaas,
                                                                        mechanism):
    f = tmp_path / "sasl.jaas.config"
    f.write_text(jaas)
    with pytest.raises(ValueError) as e:
        KafkaSecurity.from_env({V + "SECURITY_PROTOCOL": "SASL_SSL",
                                V + "SASL_JAAS_CONFIG_FILE": str(f),
                                V + "SASL_MECHANISM": mechanism})
    line = str(e.value)
    assert f"{V}SASL_JAAS_CONFIG_FILE" in line and f"{V}SASL_MECHANISM={mechanism}" in line
    assert "\n" not in line and '"p"' not in line


def test_a_jaas_login_module_agreeing_with_the_mechanism_is_taken(tmp_path):
    f = tmp_path / "sasl.jaas.config"
    f.write_text(SCRAM_JAAS)
    s = KafkaSecurity.from_env({V + "SECURITY_PROTOCOL": "SASL_SSL",
                                V + "SASL_JAAS_CONFIG_FILE": str(f),
                                V + "SASL_MECHANISM": "SCRAM-SHA-256"})
    assert (s.username, s.sasl_mechanism) == ("u", "SCRAM-SHA-256")


def test_an_expired_broker_certificate_is_called_expired():
    expired = ssl.SSLCertVerificationError(1, "certificate verify failed")
    expired.verify_code, expired.verify_message = 10, "certificate has expired"
    wrapped = kerrors.KafkaConnectionError("Handshake failed")
    wrapped.__context__ = expired  # as kafka-python raises it
    line = explain_kafka_error(wrapped, KafkaSecurity(protocol="SSL"), bootstrap="kafka:9093")
    assert "certificate has expired" in line and "not signed" not in line


def test_reloaded_settings_read_the_password_file_again(tmp_path):
    password = tmp_path / "password"
    password.write_text("old\n")
    s = KafkaSecurity.from_env({V + "SECURITY_PROTOCOL": "SASL_SSL", V + "SASL_USERNAME": "u",
                                V + "SASL_PASSWORD_FILE": str(password)})
    password.write_text("rotated\n")  # the kubelet updates the Secret volume in place
    assert s.password == "old" and s.reloaded().password == "rotated"
    assert KafkaSecurity(protocol="SSL").reloaded() == KafkaSecurity(protocol="SSL")


def test_the_operator_says_a_wrong_kafka_setting_in_one_line():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOLSTREAM_")}
    done = subprocess.run([sys.executable, "-m", "molstream_operator", "-n", "x"],
                          env={**env, V + "SECURITY_PROTOCOL": "TLS"}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{V}SECURITY_PROTOCOL" in lines[0], done.stderr


def _sasl_from_file(tmp_path, password: str) -> tuple[KafkaSecurity, object]:
    f = tmp_path / "password"
    f.write_text(password)
    return KafkaSecurity.from_env({V + "SECURITY_PROTOCOL": "SASL_SSL", V + "SASL_USERNAME": "u",
                                   V + "SASL_PASSWORD_FILE": str(f)}), f


def test_a_refused_login_is_not_permanent_once_the_password_file_changed(tmp_path):
    from molstream.kafka_security import newer_credentials
    from molstream.publish import kafka_failure

    security, password_file = _sasl_from_file(tmp_path, "old-secret")
    refused = kerrors.SaslAuthenticationFailedError("Authentication failed")
    assert newer_credentials(refused, security) is None  # the same password: it stands
    assert kafka_failure("publish", refused, security, "kafka:9093").permanent
    password_file.write_text("rotated-secret")  # the Secret rotated since the settings were read
    assert newer_credentials(refused, security).password == "rotated-secret"
    assert newer_credentials(kerrors.TopicAuthorizationFailedError("t"), security) is None
    failure = kafka_failure("publish", refused, security, "kafka:9093")
    assert not failure.permanent and "password file holds another password" in str(failure)
    assert "-secret" not in str(failure)


def test_a_worker_refused_mid_run_once_the_password_file_changed_restarts_not_fails(tmp_path):
    """A login refused after the Secret was rotated: exit 2 (restarted, reading the file
    again), not 3 (a refusal no restart mends)."""
    from molstream.config import Settings
    from molstream.kafka_security import KafkaAccessError
    from molstream.worker import KafkaUnavailable, Worker

    security, password_file = _sasl_from_file(tmp_path, "old-secret")
    worker = object.__new__(Worker)  # only its Kafka retries
    worker.settings, worker._stop = Settings(kafka_security=security), False

    def poll():
        raise kerrors.SaslAuthenticationFailedError("Authentication failed")

    with pytest.raises(KafkaAccessError, match="refused the SASL login"):
        worker._kafka("poll for batches", poll)
    password_file.write_text("rotated-secret")
    with pytest.raises(KafkaUnavailable, match="password file holds another password"):
        worker._kafka("poll for batches", poll)
