"""Source URL checks, and redaction of anything that looks like a credential in free text.

The CRD already restricts the scheme; the operator checks again (the CRD may be older than the
operator, or installed without validation) and adds what a pattern cannot express: no user name or
password embedded in the URL (they belong in the Secret named by ``spec.credentialsSecret``), and
the host on the operator's allow-list (``MOLSTREAM_ALLOWED_HOSTS``) when one is set.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import urlsplit

from molstream.hosts import host_allowed
from molstream.redaction import redact_text

__all__ = ["ALLOWED_SCHEMES", "InvalidSpecError", "check_source_url", "host_allowed", "redact"]

ALLOWED_SCHEMES = ("ftp", "ftps", "http", "https", "sftp")

_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
_HTTP_GLOB = re.compile(r"[*\[]")  # (? starts an http URL's query)


class InvalidSpecError(ValueError):
    """An IngestRequest whose spec cannot be acted on; the message names the field.

    Messages never repeat the offending URL: it may hold a password.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def check_source_url(url: object, *, allowed_hosts: Collection[str] = ()) -> str:
    """Return ``url`` if the fetcher may be pointed at it in the cluster, else raise.

    Refused: anything but ftp, ftps, http, https and sftp (``file://`` above all: in a Pod it would
    read the container's own files), credentials embedded in the URL, a missing host, an invalid
    port, whitespace or control characters, and hosts outside a non-empty allow-list.
    """
    field = "spec.url"
    if not isinstance(url, str) or not url:
        raise InvalidSpecError(field, "is required (an ftp, ftps, http, https or sftp URL)")
    if _CONTROL_OR_SPACE.search(url):
        raise InvalidSpecError(field, "must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidSpecError(field, f"is not a valid URL ({type(exc).__name__})") from None
    scheme = parts.scheme.lower()
    if scheme == "file":
        raise InvalidSpecError(
            field,
            "file:// URLs are refused in the cluster; serve the file over ftp, ftps, http or https",
        )
    if scheme not in ALLOWED_SCHEMES:
        shown = scheme if scheme.isascii() and scheme.isalnum() and len(scheme) <= 16 else "?"
        raise InvalidSpecError(
            field, f"scheme {shown!r} is not allowed; use one of {', '.join(ALLOWED_SCHEMES)}"
        )
    if scheme in ("http", "https", "sftp") and _HTTP_GLOB.search(parts.path):
        raise InvalidSpecError(
            field,
            "globs (*, ?, [...]) are supported in ftp and ftps URLs only: name one file "
            "(a literal * is written %2A, [ is %5B)",
        )
    if "@" in parts.netloc:
        raise InvalidSpecError(
            field,
            "must not embed credentials (user:password@host); "
            "put them in the Secret named by spec.credentialsSecret",
        )
    host = parts.hostname
    if not host:
        raise InvalidSpecError(field, "has no host")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidSpecError(field, "has an invalid port") from None
    if not host_allowed(host, allowed_hosts):
        raise InvalidSpecError(
            field,
            f"host {host!r} is not on the operator's allow-list (MOLSTREAM_ALLOWED_HOSTS)",
        )
    return url


def redact(text: str) -> str:
    """Remove what looks like a credential from free text (fetcher errors, API messages,
    status fields, Events, logs): molstream.redaction, the one redaction the fetcher and the
    worker use too.

    ``ftp://user:pw@host/x`` becomes ``ftp://***@host/x``; the values of token and signature
    query parameters (``X-Amz-Signature``, ``sig``, ``token``...) become ``REDACTED``;
    ``password=xyz`` becomes ``password=***``.
    """
    return redact_text(text)
