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
