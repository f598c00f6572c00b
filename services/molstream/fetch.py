"""Download a source file to local disk: ftp, ftps (explicit TLS), http, https and file URLs.

Transient failures (connection reset, timeout, 5xx) are retried with exponential backoff, and
each retry resumes where the partial file ends (FTP `REST`, HTTP `Range`) instead of starting
over. Permanent failures (wrong password, missing file, bad URL) end at once with a
`FetchError` that names the problem. Credentials come from the URL, the environment
(MOLSTREAM_SOURCE_USERNAME / MOLSTREAM_SOURCE_PASSWORD) or files named by
MOLSTREAM_SOURCE_USERNAME_FILE / MOLSTREAM_SOURCE_PASSWORD_FILE, and never appear in messages:
every URL shown is passed through `redact` first.
"""

from __future__ import annotations

import base64
import ftplib
import logging
import os
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

log = logging.getLogger(__name__)

SCHEMES = ("ftp", "ftps", "http", "https", "file")
_CHUNK = 1 << 20
Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)


class FetchError(RuntimeError):
    """The download failed for good; the message says why and never holds credentials."""


class _Transient(Exception):
    """A failure worth retrying (the partial file is kept and resumed)."""


@dataclass(frozen=True)
class Credentials:
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:  # never print a password, even by accident
        hidden = "***" if self.password else None
        return f"Credentials(username={self.username!r}, password={hidden})"


@dataclass(frozen=True, kw_only=True)
class Limits:
    max_bytes: int
    timeout_s: float  # for the whole download, retries included
    retries: int = 5
    backoff_s: float = 1.0
    socket_timeout_s: float = 30.0
    ca_file: Path | None = None  # extra trust for ftps/https sources behind a private CA
    # Called with the bytes still to fetch once the server has said the file's size: raises
    # when they do not fit (molstream.scratch).
    room: Callable[[int], None] | None = None


def credentials_from_env(env: dict[str, str] | None = None) -> Credentials:
    env = os.environ if env is None else env

    def read(name: str) -> str | None:
        path = env.get(f"MOLSTREAM_SOURCE_{name}_FILE")
        if path:
            return Path(path).read_text().strip()
        return env.get(f"MOLSTREAM_SOURCE_{name}") or None

    return Credentials(read("USERNAME"), read("PASSWORD"))


def redact(url: str) -> str:
    """The URL without its password (and with the username kept, which helps debugging).

    A password pasted into a URL without percent-encoding (`/`, `?`, `#` or `@` in it) ends the
    URL's authority early, so that no password is found where it should be: then everything
    between `//` and the last `@` is hidden, whatever it is."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        scheme, sep, rest = url.partition("://")
        userinfo = rest.rpartition("@")[0]
        if sep and ":" in userinfo:
            return f"{scheme}://***@{rest.rpartition('@')[2]}"
        return url
    host = parts.netloc.rpartition("@")[2]  # as written: parsing a bad port must not fail here
    user = f"{parts.username}:***@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, ""))


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise FetchError(f"unsupported URL scheme {parts.scheme!r} in {redact(url)!r}: "
                         f"use one of {', '.join(SCHEMES)}")
    try:
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        raise FetchError(f"URL {redact(url)!r} is malformed (its port is not a number): "
                         "percent-encode a user name or password in a URL (/ as %2F, @ as %40,"
                         " ? as %3F, # as %23), or give them in MOLSTREAM_SOURCE_USERNAME and "
                         "MOLSTREAM_SOURCE_PASSWORD") from None
    if parts.scheme != "file" and not parts.hostname:
        raise FetchError(f"URL {redact(url)!r} has no host")
    if not parts.path or parts.path.endswith("/"):
        raise FetchError(f"URL {redact(url)!r} names no file")


def download(url: str, dest: Path, *, credentials: Credentials = Credentials(),
             limits: Limits, progress: Progress | None = None) -> Path:
    """Fetch `url` into `dest` (resuming a partial `dest` left by an earlier attempt)."""
    check_url(url)
    parts = urlsplit(url)
    if parts.scheme == "file":
        path = Path(unquote(parts.path))
        if not path.is_file():
            raise FetchError(f"{url}: no such file")
        if path.stat().st_size > limits.max_bytes:
            raise FetchError(f"{url} is larger than the download limit of {limits.max_bytes} bytes")
        return path
    creds = Credentials(unquote(parts.username) if parts.username else credentials.username,
                        unquote(parts.password) if parts.password else credentials.password)
    fetch_once = _ftp_fetch if parts.scheme in ("ftp", "ftps") else _http_fetch
    deadline = time.monotonic() + limits.timeout_s
    dest.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(limits.retries + 1):
        try:
            fetch_once(url, dest, creds, limits, deadline, progress)
            return dest
        except _Transient as e:
            if time.monotonic() >= deadline:
                raise _timed_out(url, limits) from None
            if attempt == limits.retries:
                raise FetchError(
                    f"{redact(url)}: giving up after {attempt + 1} attempt(s): {e}") from None
            wait = min(limits.backoff_s * 2**attempt, 30.0, max(0.0, deadline - time.monotonic()))
            have = dest.stat().st_size if dest.exists() else 0
            log.warning("download of %s interrupted (%s); retry %d/%d in %.1fs from byte %d",
                        redact(url), e, attempt + 1, limits.retries, wait, have)
            time.sleep(wait)
    raise AssertionError("unreachable")


class _Budget:
    """Counts bytes against the size cap and the deadline while a transfer runs."""

    def __init__(self, url: str, have: int, total: int | None, limits: Limits, deadline: float,
                 progress: Progress | None) -> None:
        self.url, self.done, self.total = url, have, total
        self.limits, self.deadline, self.progress = limits, deadline, progress
        if total is not None and total > limits.max_bytes:
            raise FetchError(f"{redact(url)} is {total} bytes, over the download limit of "
                             f"{limits.max_bytes} bytes (MOLSTREAM_MAX_DOWNLOAD_BYTES)")
        if total is not None and limits.room is not None:
            try:
                limits.room(total - have)
            except OSError as e:
                raise FetchError(f"{redact(url)} is {total} bytes: {e}") from None

    def add(self, n: int) -> None:
        self.done += n
        if self.done > self.limits.max_bytes:
            raise FetchError(f"{redact(self.url)} exceeds the download limit of "
                             f"{self.limits.max_bytes} bytes (MOLSTREAM_MAX_DOWNLOAD_BYTES)")
        if time.monotonic() > self.deadline:
            raise _timed_out(self.url, self.limits)
        if self.progress:
            self.progress(self.done, self.total)


def _timed_out(url: str, limits: Limits) -> FetchError:
    return FetchError(f"{redact(url)}: download took longer than {limits.timeout_s:.0f}s "
                      "(MOLSTREAM_DOWNLOAD_TIMEOUT_S)")


def _socket_timeout(limits: Limits, deadline: float) -> float:
    """Per-operation socket timeout: never past the download's deadline, so that a server that
    stops sending (or never answers) cannot hold the download beyond it."""
    return max(0.05, min(limits.socket_timeout_s, deadline - time.monotonic()))


# -- FTP / FTPS -------------------------------------------------------------------------------


def _ftp_fetch(url: str, dest: Path, creds: Credentials, limits: Limits, deadline: float,
               progress: Progress | None) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 21
    path = unquote(parts.path)
    tls = parts.scheme == "ftps"
    ftp: ftplib.FTP = ftplib.FTP_TLS(context=_tls_context(limits)) if tls else ftplib.FTP()
    try:
        try:
            ftp.connect(host, port, timeout=_socket_timeout(limits, deadline))
        except (OSError, EOFError) as e:
            raise _Transient(f"cannot connect to {host}:{port}: {_reason(e)}") from None
        try:
            if tls:
                ftp.auth()
            ftp.login(creds.username or "anonymous", creds.password or "anonymous@")
            if tls:
                ftp.prot_p()
            ftp.voidcmd("TYPE I")
        except ftplib.error_perm as e:
            raise FetchError(f"{redact(url)}: login refused ({_ftp_reply(e)})") from None
        except ssl.SSLError as e:
            raise FetchError(f"{redact(url)}: TLS failed ({e.reason or e})") from None
        try:
            size = ftp.size(path)
        except ftplib.error_perm as e:
            raise FetchError(f"{redact(url)}: no such file ({_ftp_reply(e)})") from None
        have = dest.stat().st_size if dest.exists() else 0
        if size is not None and have > size:
            dest.unlink()  # not a prefix of this file: start over
            have = 0
        if size is not None and have == size:
            return
        budget = _Budget(url, have, size, limits, deadline, progress)
        with open(dest, "ab") as out:
            def write(block: bytes) -> None:
                out.write(block)
                budget.add(len(block))
            try:
                ftp.retrbinary(f"RETR {path}", write, blocksize=_CHUNK, rest=have or None)
            except ftplib.error_perm as e:
                raise FetchError(f"{redact(url)}: cannot read the file ({_ftp_reply(e)})") from None
        if size is not None and dest.stat().st_size < size:
            raise _Transient(f"connection closed at byte {dest.stat().st_size} of {size}")
    except (OSError, EOFError, ftplib.error_temp, ftplib.error_reply) as e:
        raise _Transient(_reason(e)) from None
    finally:
        try:
            ftp.close()
        except OSError:
            pass


def _tls_context(limits: Limits) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(limits.ca_file) if limits.ca_file else None)


def _ftp_reply(e: ftplib.Error) -> str:
    return str(e).strip()


def _reason(e: BaseException) -> str:
    if isinstance(e, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, socket.gaierror):
        return f"unknown host ({e.strerror})"
    return str(e) or type(e).__name__


# -- HTTP / HTTPS ------------------------------------------------------------------------------


def _http_fetch(url: str, dest: Path, creds: Credentials, limits: Limits, deadline: float,
                progress: Progress | None) -> None:
    parts = urlsplit(url)
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    have = dest.stat().st_size if dest.exists() else 0
    request = urllib.request.Request(clean, headers={"User-Agent": "molstream"})
    if creds.username:
        token = base64.b64encode(f"{creds.username}:{creds.password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(  # noqa: S310 - the scheme was checked
            request, timeout=_socket_timeout(limits, deadline),
            context=_tls_context(limits) if parts.scheme == "https" else None)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the partial file is already complete
            return
        if e.code in (401, 403):
            raise FetchError(f"{redact(url)}: access refused (HTTP {e.code}): "
                             "check the username and password") from None
        if e.code == 404:
            raise FetchError(f"{redact(url)}: no such file (HTTP 404)") from None
        if e.code >= 500 or e.code == 429:
            raise _Transient(f"HTTP {e.code}") from None
        raise FetchError(f"{redact(url)}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, ssl.SSLError):
            raise FetchError(f"{redact(url)}: TLS failed ({e.reason})") from None
        raise _Transient(f"cannot connect to {netloc}: {_reason(e.reason)}") from None
    except OSError as e:
        raise _Transient(_reason(e)) from None
    with response:
        if have and response.status != 206:
            have = 0  # the server ignored Range: take the whole body again
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        budget = _Budget(url, have, total, limits, deadline, progress)
        try:
            with open(dest, "ab" if have else "wb") as out:
                # read1: what has arrived, so that a trickling server meets the deadline too
                # (read(n) would wait for n bytes).
                while block := response.read1(_CHUNK):
                    out.write(block)
                    budget.add(len(block))
        except OSError as e:
            raise _Transient(_reason(e)) from None
    if total is not None and dest.stat().st_size < total:
        raise _Transient(f"connection closed at byte {dest.stat().st_size} of {total}")
