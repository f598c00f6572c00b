"""Kafka client security from the environment (molstream.kafka_security): parsing, the
checks that name the variable, Strimzi's Secret shapes, and the refusals explained in one line.
"""

from __future__ import annotations

import ssl

import pytest
from kafka import errors as kerrors
from molstream.kafka_security import KafkaSecurity, explain_kafka_error, parse_jaas_config
from molstream_dev import certs

V = "MOLSTREAM_KAFKA_"


def env(**values: str) -> dict[str, str]:
    return {V + k: v for k, v in values.items()}


def test_the_default_is_plaintext_and_adds_nothing_else():
    s = KafkaSecurity.from_env({})
    assert s.protocol == "PLAINTEXT"
    assert s.client_kwargs() == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_with_a_ca_gives_kafka_python_its_settings():
    ca, _ = certs.test_ca()
    s = KafkaSecurity.from_env(env(SECURITY_PROTOCOL="sasl_ssl", SASL_USERNAME="molstream",
                                   SASL_PASSWORD="s3cret", CA_FILE=str(ca)))
    assert s.client_kwargs() == {
        "security_protocol": "SASL_SSL", "ssl_check_hostname": True, "ssl_cafile": str(ca),
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "molstream",
        "sasl_plain_password": "s3cret"}
    assert "s3cret" not in repr(s) and "s3cret" not in s.describe()
    assert s.principal == "molstream"


def test_mtls_takes_strimzis_user_crt_and_user_key(tmp_path):
    ca, _ = certs.test_ca()
    cert, key = certs.issue_cert("molstream-mtls", client=True)
    s = KafkaSecurity.from_env(env(SECURITY_PROTOCOL="SSL", CA_FILE=str(ca),
                                   CERT_FILE=str(cert), KEY_FILE=str(key),
                                   CHECK_HOSTNAME="false"))
    kwargs = s.client_kwargs()
    assert kwargs["ssl_certfile"] == str(cert) and kwargs["ssl_keyfile"] == str(key)
    assert kwargs["ssl_check_hostname"] is False
    assert s.principal == "CN=molstream-mtls"  # the principal Strimzi's TLS users have


def test_strimzis_sasl_jaas_config_gives_username_and_password(tmp_path):
    jaas = tmp_path / "sasl.jaas.config"
    jaas.write_text('org.apache.kafka.common.security.scram.ScramLoginModule required '
                    'username="my-user" password="p@ss=w\\"ord";')
    s = KafkaSecurity.from_env(env(SECURITY_PROTOCOL="SASL_SSL",
                                   SASL_JAAS_CONFIG_FILE=str(jaas)))
    assert (s.username, s.password, s.sasl_mechanism) == ("my-user", 'p@ss=w\\"ord',
                                                          "SCRAM-SHA-512")


def test_a_plain_login_module_means_plain():
    module, options = parse_jaas_config(
        'org.apache.kafka.common.security.plain.PlainLoginModule required username=u '
        'password="p";')
    assert module.endswith("PlainLoginModule") and options == {"username": "u", "password": "p"}


def test_the_password_file_is_read_without_its_newline(tmp_path):
    f = tmp_path / "password"
    f.write_text("from-a-secret\n")
    s = KafkaSecurity.from_env(env(SECURITY_PROTOCOL="SASL_PLAINTEXT", SASL_USERNAME="u",
                                   SASL_PASSWORD_FILE=str(f), SASL_MECHANISM="plain"))
    assert (s.password, s.sasl_mechanism) == ("from-a-secret", "PLAIN")
    assert "ssl_cafile" not in s.client_kwargs()


@pytest.mark.parametrize(("values", "names"), [
    ({"SECURITY_PROTOCOL": "TLS"}, "MOLSTREAM_KAFKA_SECURITY_PROTOCOL"),
    ({"SECURITY_PROTOCOL": "SASL_SSL", "SASL_USERNAME": "u"}, "MOLSTREAM_KAFKA_SASL_PASSWORD"),
    ({"SECURITY_PROTOCOL": "SASL_SSL", "SASL_PASSWORD": "p"}, "MOLSTREAM_KAFKA_SASL_USERNAME"),
    ({"SECURITY_PROTOCOL": "SASL_SSL", "SASL_USERNAME": "u", "SASL_PASSWORD": "p",
      "SASL_MECHANISM": "GSSAPI"}, "MOLSTREAM_KAFKA_SASL_MECHANISM"),
    ({"SASL_USERNAME": "u", "SASL_PASSWORD": "p"}, "MOLSTREAM_KAFKA_SECURITY_PROTOCOL"),
    ({"CA_FILE": "CA"}, "MOLSTREAM_KAFKA_CA_FILE"),
    ({"SECURITY_PROTOCOL": "SSL", "CERT_FILE": "CERT"}, "MOLSTREAM_KAFKA_KEY_FILE"),
    ({"SECURITY_PROTOCOL": "SSL", "CA_FILE": "/nonexistent/ca.crt"}, "MOLSTREAM_KAFKA_CA_FILE"),
    ({"SECURITY_PROTOCOL": "SSL", "CHECK_HOSTNAME": "maybe"},
     "MOLSTREAM_KAFKA_CHECK_HOSTNAME"),
    ({"SECURITY_PROTOCOL": "SASL_SSL", "SASL_USERNAME": "u",
      "SASL_PASSWORD_FILE": "/nonexistent/password"}, "MOLSTREAM_KAFKA_SASL_PASSWORD_FILE"),
])
def test_a_wrong_setting_is_one_line_naming_the_variable(values, names):
    ca, _ = certs.test_ca()
    cert, _ = certs.issue_cert("molstream-mtls", client=True)
    values = {k: {"CA": str(ca), "CERT": str(cert)}.get(v, v) for k, v in values.items()}
    with pytest.raises(ValueError) as e:
        KafkaSecurity.from_env(env(**values))
    assert names in str(e.value) and "\n" not in str(e.value)


def test_a_certificate_and_a_key_that_are_not_a_pair_are_refused():
    ca, _ = certs.test_ca()
    cert, _ = certs.issue_cert("molstream-mtls", client=True)
    _, other_key = certs.self_signed()
    with pytest.raises(ValueError, match="CERT_FILE and MOLSTREAM_KAFKA_KEY_FILE"):
        KafkaSecurity.from_env(env(SECURITY_PROTOCOL="SSL", CERT_FILE=str(cert),
                                   KEY_FILE=str(other_key)))


def test_a_jaas_file_that_is_not_one_is_refused_without_echoing_it(tmp_path):
    f = tmp_path / "jaas"
    f.write_text("password=hunter2")
    with pytest.raises(ValueError) as e:
        KafkaSecurity.from_env(env(SECURITY_PROTOCOL="SASL_SSL", SASL_JAAS_CONFIG_FILE=str(f)))
    assert "MOLSTREAM_KAFKA_SASL_JAAS_CONFIG_FILE" in str(e.value)
    assert "hunter2" not in str(e.value)


SASL = KafkaSecurity(protocol="SASL_SSL", username="molstream", password="hunter2")


@pytest.mark.parametrize(("error", "expected"), [
    (kerrors.SaslAuthenticationFailedError("Authentication failed ... SCRAM-SHA-512"),
     "refused the SASL login of user 'molstream' (SCRAM-SHA-512): wrong password"),
    (kerrors.TopicAuthorizationFailedError("t.rows"),
     "denies user 'molstream' access to topic 't.rows': grant the ACL"),
    (kerrors.GroupAuthorizationFailedError("t-worker"),
     "denies user 'molstream' Read on consumer group 't-worker'"),
    (kerrors.KafkaError("Unexpected error in InitProducerIdResponse: [Error 31] "
                        "ClusterAuthorizationFailedError"), "IdempotentWrite on the cluster"),
    (kerrors.UnsupportedSaslMechanismError("... Enabled mechanisms: ['PLAIN']"),
     "does not offer SASL mechanism SCRAM-SHA-512"),
])
def test_kafkas_refusals_are_one_line_without_the_password(error, expected):
    line = explain_kafka_error(error, SASL, bootstrap="kafka:9093")
    assert expected in line and "hunter2" not in line and "\n" not in line


def test_a_certificate_error_says_which_check_failed():
    unknown = ssl.SSLCertVerificationError(1, "certificate verify failed")
    unknown.verify_code, unknown.verify_message = 20, "unable to get local issuer certificate"
    wrapped = kerrors.KafkaConnectionError("Handshake failed")
    wrapped.__context__ = unknown  # as kafka-python raises it
    assert "not signed by a CA this system trusts" in explain_kafka_error(wrapped, SASL)
    mismatch = ssl.SSLCertVerificationError(1, "certificate verify failed")
    mismatch.verify_code, mismatch.verify_message = 62, "Hostname mismatch"
    assert "does not carry the name" in explain_kafka_error(mismatch, SASL)


def test_an_outage_is_not_a_refusal():
    assert explain_kafka_error(kerrors.KafkaTimeoutError("Unable to bootstrap"), SASL) is None
    assert explain_kafka_error(kerrors.KafkaConnectionError("socket disconnected"), SASL) is None
