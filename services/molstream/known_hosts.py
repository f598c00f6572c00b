"""SSH host keys in OpenSSH's known_hosts format: the only way an sftp:// source is trusted.

An IngestRequest (`spec.sftp.knownHosts`, MOLSTREAM_SOURCE_KNOWN_HOSTS) and the operator's
administrator (the chart's `operator.sftp.knownHosts`, MOLSTREAM_KNOWN_HOSTS) give lines such
as `ssh-keyscan` prints: `host[,host…] key-type base64-key [comment]`, hosts hashed (`|1|…`) or
not, `[host]:port` for a port other than 22. Every line is checked here, so that a typo fails
the ingest naming its line instead of leaving the server "unknown"; markers
(`@cert-authority`, `@revoked`) are refused rather than silently ignored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

__all__ = ["KNOWN_KEY_TYPES", "check_lines", "host_key_name", "names_host", "split_lines"]

KNOWN_KEY_TYPES = (
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "ssh-rsa",
)


def split_lines(text: str | None) -> list[str]:
    """The entries of a known_hosts text: blank lines and comments dropped."""
    return [line.strip() for line in (text or "").splitlines()
            if line.strip() and not line.strip().startswith("#")]


def check_lines(text: str | None, *, where: str = "known hosts") -> list[str]:
    """The entries, each checked: three fields at least, a key type molstream reads, a key
    that is base64 and carries that type. Raises ValueError naming the line (never its key)."""
    lines = split_lines(text)
    for n, line in enumerate(lines, 1):
        fields = line.split()
        if line.startswith("@"):
            raise ValueError(f"{where}, entry {n}: markers such as {fields[0]} are not "
                             "supported; give the server's own host key")
        if len(fields) < 3:
            raise ValueError(f"{where}, entry {n}: expected 'host key-type base64-key', "
                             f"found {len(fields)} field(s)")
        names, kind, key = fields[:3]
        if kind not in KNOWN_KEY_TYPES:
            raise ValueError(f"{where}, entry {n}: key type {kind[:40]!r} is not one of "
                             f"{', '.join(KNOWN_KEY_TYPES)}")
        try:
            blob = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{where}, entry {n}: the key is not base64") from None
        if _blob_type(blob) != kind:
            raise ValueError(f"{where}, entry {n}: the key is not an {kind} key")
        if not all(names.split(",")):
            raise ValueError(f"{where}, entry {n}: an empty host name")
    return lines


def host_key_name(host: str, port: int | None) -> str:
    """The name known_hosts gives a server: `host`, or `[host]:port` off port 22."""
    return host if port in (None, 22) else f"[{host}]:{port}"


def names_host(text: str | None, host: str, port: int | None) -> bool:
    """Whether any entry names the server (plainly or hashed; negated patterns and wildcards
    are not matched: write the host itself)."""
    name = host_key_name(host.lower(), port)
    for line in split_lines(text):
        for pattern in line.split()[0].split(","):
            if pattern.startswith("|1|"):
                if _hashed_match(pattern, name):
                    return True
            elif pattern.lower() == name:
                return True
    return False


def _hashed_match(pattern: str, name: str) -> bool:
    try:
        salt_b64, digest_b64 = pattern[3:].split("|", 1)
        salt, digest = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), digest)


def _blob_type(blob: bytes) -> str | None:
    """The key type an SSH public key blob starts with (a length-prefixed string)."""
    if len(blob) < 4:
        return None
    size = int.from_bytes(blob[:4], "big")
    try:
        return blob[4:4 + size].decode("ascii") if size <= len(blob) - 4 else None
    except UnicodeDecodeError:
        return None
