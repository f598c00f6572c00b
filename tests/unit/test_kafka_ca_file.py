"""A MOLSTREAM_KAFKA_CA_FILE (or CERT_FILE, KEY_FILE) that TLS cannot use is named when the
settings are read, not taken for an unreachable broker later.

A file with the PEM marker but no readable certificate (a truncated copy, a Secret key holding
something else between the markers) used to pass; every client then failed to build its TLS
context, which kafka-python and the access probe both took for an unreachable broker: the
fetcher ended after the outage limit with "cannot reach Kafka" (exit 2, retried by its Job),
the worker crash-looped saying the same. A DER file (what `openssl x509 -outform DER` or some
CA exports give) was reported as "UnicodeDecodeError"."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from molstream.kafka_access import check_access
from molstream.kafka_security import KafkaAccessError, KafkaSecurity
from molstream_dev import certs

BASE = {"MOLSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "MOLSTREAM_KAFKA_SASL_USERNAME": "u",
        "MOLSTREAM_KAFKA_SASL_PASSWORD": "p"}
NOT_A_CERTIFICATE = "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"


def _der(tmp_path: Path, pem: Path, command: str) -> Path:
    der = tmp_path / f"{pem.stem}.der"
    subprocess.run(["openssl", command, "-in", pem, "-outform", "DER", "-out", der], check=True)
    return der


def test_a_ca_file_with_the_marker_but_no_certificate_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "ca.crt"
    bad.write_text(NOT_A_CERTIFICATE)
    with pytest.raises(ValueError, match="MOLSTREAM_KAFKA_CA_FILE") as e:
        KafkaSecurity.from_env({**BASE, "MOLSTREAM_KAFKA_CA_FILE": str(bad)})
    assert "no certificate TLS can use" in str(e.value) and "\n" not in str(e.value)


def test_a_der_ca_file_is_named_as_der_with_the_command_that_converts_it(tmp_path: Path):
    der = _der(tmp_path, certs.test_ca()[0], "x509")
    with pytest.raises(ValueError) as info:
        KafkaSecurity.from_env({**BASE, "MOLSTREAM_KAFKA_CA_FILE": str(der)})
    line = str(info.value)
    assert line.startswith("MOLSTREAM_KAFKA_CA_FILE") and "DER" in line, line
    assert f"openssl x509 -inform der -in {der}" in line


def test_a_der_client_key_is_named_as_der(tmp_path: Path):
    cert, key = certs.issue_cert("molstream-mtls", client=True)
    der = _der(tmp_path, key, "pkey")
    with pytest.raises(ValueError) as info:
        KafkaSecurity.from_env({"MOLSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL",
                                "MOLSTREAM_KAFKA_CERT_FILE": str(cert),
                                "MOLSTREAM_KAFKA_KEY_FILE": str(der)})
    assert "MOLSTREAM_KAFKA_KEY_FILE" in str(info.value)
    assert "openssl pkey -inform der" in str(info.value)


def test_a_ca_file_spoiled_after_the_settings_were_read_is_not_an_outage(tmp_path: Path):
    """The probe builds its TLS context before connecting: a file TLS cannot use is the
    settings' fault, at once, even with no broker there."""
    ca = tmp_path / "ca.crt"
    ca.write_bytes(certs.test_ca()[0].read_bytes())
    security = KafkaSecurity.from_env({**BASE, "MOLSTREAM_KAFKA_CA_FILE": str(ca)})
    ca.write_text(NOT_A_CERTIFICATE)
    with pytest.raises(KafkaAccessError, match="MOLSTREAM_KAFKA_CA_FILE"):
        check_access("127.0.0.1:1", security, timeout_s=2)  # (nothing listens on port 1)
