"""Download a source file to local disk: ftp, ftps (explicit TLS), http, https, sftp and file
URLs.

Transient failures (connection reset, timeout, 5xx) are retried with exponential backoff, and
each retry resumes where the partial file ends (FTP `REST`, HTTP `Range`, an SFTP read from an
offset) when the server proves the file is the one the partial file began (molstream.fetch.ftp,
molstream.fetch.http, molstream.fetch.sftp, whose host keys come from known_hosts lines), and
starts over otherwise. Permanent failures (wrong password, missing file, bad URL) end at once with a
`FetchError` that names the problem. Credentials come from the URL, the environment
(MOLSTREAM_SOURCE_USERNAME / MOLSTREAM_SOURCE_PASSWORD) or files named by
MOLSTREAM_SOURCE_USERNAME_FILE / MOLSTREAM_SOURCE_PASSWORD_FILE, and never appear in messages:
every URL shown is passed through `redact` first (which hides secret query parameters too:
molstream.redaction). Credentials never go over plain ftp:// or http:// unless
`Limits.insecure_credentials` (MOLSTREAM_ALLOW_INSECURE_CREDENTIALS).

Every connection goes to an address `Limits.addresses` allows (molstream.addresses: no
loopback, link-local, private... address unless MOLSTREAM_ALLOWED_NETWORKS or
MOLSTREAM_INTERNAL_HOSTS allow it), the very address that was checked.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .. import metrics
from .common import (
    SCHEMES,
    Credentials,
    FetchError,
    Limits,
    Progress,
    Transient,
    check_credentials,
    check_host,
    check_url,
    credentials_from_env,
    partial,
    redact,
    timed_out,
)
from .ftp import ftp_fetch
from .http import http_fetch
from .sftp import sftp_fetch

__all__ = ["SCHEMES", "Credentials", "FetchError", "Limits", "check_url",
           "credentials_from_env", "download", "redact"]

log = logging.getLogger(__name__)


def download(url: str, dest: Path, *, credentials: Credentials | None = None,
             limits: Limits, progress: Progress | None = None) -> Path:
    """Fetch `url` into `dest` (resuming a partial `dest` left by an earlier attempt)."""
    check_url(url)
    credentials = credentials or Credentials()
    parts = urlsplit(url)
    if parts.scheme == "file":
        path = Path(unquote(parts.path))
        if not path.is_file():
            raise FetchError(f"{url}: no such file")
        if path.stat().st_size > limits.max_bytes:
            raise FetchError(f"{url} is larger than the download limit of {limits.max_bytes} bytes")
        return path
    check_host(url, limits)
    creds = Credentials(unquote(parts.username) if parts.username else credentials.username,
                        unquote(parts.password) if parts.password else credentials.password,
                        credentials.private_key, credentials.passphrase)
    check_credentials(url, creds, limits)
    fetch_once = ftp_fetch if parts.scheme in ("ftp", "ftps") else http_fetch
    if parts.scheme == "sftp":
        fetch_once = sftp_fetch
    deadline = time.monotonic() + limits.timeout_s
    dest.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(limits.retries + 1):
        try:
            fetch_once(url, dest, creds, limits, deadline, progress)
            return dest
        except Transient as e:
            if time.monotonic() >= deadline:
                raise timed_out(url, limits) from None
            if attempt == limits.retries:
                raise FetchError(
                    f"{redact(url)}: giving up after {attempt + 1} attempt(s): {e}") from None
            wait = min(limits.backoff_s * 2**attempt, 30.0, max(0.0, deadline - time.monotonic()))
            have = partial(dest)
            metrics.DOWNLOAD_RETRIES.inc()
            log.warning("download of %s interrupted (%s); retry %d/%d in %.1fs from byte %d",
                        redact(url), e, attempt + 1, limits.retries, wait, have)
            time.sleep(wait)
    raise AssertionError("unreachable")
