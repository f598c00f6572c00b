"""A self-signed certificate for 127.0.0.1, shared by the FTPS and HTTPS test servers.
Clients trust it through MOLSTREAM_SOURCE_CA_FILE, as users trust a private CA."""

from __future__ import annotations

import fcntl
import subprocess
from pathlib import Path

from ._process import CACHE, require


def self_signed() -> tuple[Path, Path]:
    """(certificate, key), made once under .cache/certs and reused."""
    d = CACHE / "certs"
    cert, key = d / "localhost.pem", d / "localhost-key.pem"
    if cert.exists() and key.exists():
        return cert, key
    d.mkdir(parents=True, exist_ok=True)
    # Several test processes may get here at once: a lock keeps cert and key one pair.
    with open(d / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cert.exists() and key.exists()):
            tmp_cert, tmp_key = d / "cert.tmp", d / "key.tmp"
            done = subprocess.run(
                [require("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                 "-keyout", str(tmp_key), "-out", str(tmp_cert), "-days", "3650",
                 "-subj", "/CN=127.0.0.1",
                 "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"openssl could not make a certificate: {done.stderr}")
            tmp_key.rename(key)
            tmp_cert.rename(cert)
    return cert, key


def test_ca() -> tuple[Path, Path]:
    """(certificate, key) of the test environment's own CA, made once under .cache/certs: the
    CA that secured test services (Kafka's TLS listeners, PostgreSQL) present certificates of,
    and that clients trust as users trust Strimzi's cluster CA or CloudNativePG's."""
    d = CACHE / "certs"
    cert, key = d / "test-ca.pem", d / "test-ca-key.pem"
    if cert.exists() and key.exists():
        return cert, key
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cert.exists() and key.exists()):
            tmp_cert, tmp_key = d / "ca.tmp", d / "ca-key.tmp"
            _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_key),
                     "-out", str(tmp_cert), "-days", "3650", "-subj", "/CN=molstream test CA",
                     "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign")
            tmp_key.rename(key)
            tmp_cert.rename(cert)
    return cert, key


def issue_cert(name: str, *, sans: tuple[str, ...] = ("IP:127.0.0.1", "DNS:localhost"),
               client: bool = False) -> tuple[Path, Path]:
    """(certificate, key) for `name` (the subject's CN, and the file names), signed by
    test_ca(), made once: a server certificate for `sans`, or with client=True one for TLS
    client authentication (a Strimzi KafkaUser's user.crt/user.key)."""
    ca_cert, ca_key = test_ca()
    d = CACHE / "certs"
    cert, key = d / f"{name}.pem", d / f"{name}-key.pem"
    if cert.exists() and key.exists():
        return cert, key
    with open(d / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cert.exists() and key.exists()):
            tmp_cert, tmp_key, csr = d / f"{name}.tmp", d / f"{name}-key.tmp", d / f"{name}.csr"
            ext = d / f"{name}.ext"
            usage = "clientAuth" if client else "serverAuth"
            ext.write_text(f"extendedKeyUsage={usage}\n"
                           + (f"subjectAltName={','.join(sans)}\n" if sans and not client else ""))
            _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_key),
                     "-out", str(csr), "-subj", f"/CN={name}")
            _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
                     "-CAcreateserial", "-out", str(tmp_cert), "-days", "3650",
                     "-extfile", str(ext))
            csr.unlink(missing_ok=True)
            ext.unlink(missing_ok=True)
            tmp_key.chmod(0o600)
            tmp_key.rename(key)
            tmp_cert.rename(cert)
    return cert, key


def _openssl(*args: str) -> None:
    done = subprocess.run([require("openssl"), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()}")
