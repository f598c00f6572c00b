"""A self-signed certificate for 127.0.0.1, shared by the FTPS and HTTPS test servers.
Clients trust it through MOLSTREAM_SOURCE_CA_FILE, as users trust a private CA."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ._process import CACHE, require


def self_signed() -> tuple[Path, Path]:
    d = CACHE / "certs"
    cert, key = d / "localhost.pem", d / "localhost-key.pem"
    if not cert.exists():
        d.mkdir(parents=True, exist_ok=True)
        subprocess.run([require("openssl", "tools/provision/services.sh"), "req", "-x509",
                        "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                        "-days", "3650", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True)
    return cert, key
