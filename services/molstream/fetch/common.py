"""What every source shares: errors, credentials, limits, the byte budget, and the validators
that let a download resume only where the server proves the resource is the same."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import ssl
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ..addresses import AddressPolicy, AddressRefused
from ..hosts import host_allowed
from ..redaction import redact_url

log = logging.getLogger(__name__)

SCHEMES = ("ftp", "ftps", "http", "https", "sftp", "file")
CHUNK = 1 << 20
Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)


class FetchError(RuntimeError):
    """The download failed for good; the message says why and never holds credentials."""


class Transient(Exception):
    """A failure worth retrying (the partial file is kept and resumed)."""


@dataclass(frozen=True)
class Credentials:
    username: str | None = None
    password: str | None = None
    # sftp:// only: an SSH private key (OpenSSH or PEM text) and the passphrase that opens it.
    private_key: str | None = None
    passphrase: str | None = None

    def __repr__(self) -> str:  # never print a password, even by accident
        hidden = "***" if self.password else None
        key = "***" if self.private_key else None
        return f"Credentials(username={self.username!r}, password={hidden}, private_key={key})"


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
    # Source hosts the fetcher may be sent to, by the URL or by any redirect on the way
    # (MOLSTREAM_ALLOWED_HOSTS, the operator's own list); empty: any.
    allowed_hosts: Collection[str] = ()
    # sftp:// sources: the server's host key must be one of these known_hosts lines
    # (molstream.known_hosts); the pinned ones (the operator's administrator's) win for the
    # hosts they name. An unknown or different key is refused, never trusted on first use.
    known_hosts: str = ""
    pinned_known_hosts: str = ""
    # Which addresses may be connected to (molstream.addresses: MOLSTREAM_ALLOWED_NETWORKS,
    # MOLSTREAM_INTERNAL_HOSTS, MOLSTREAM_DENIED_NETWORKS); the default refuses every address
    # that is not a public one.
    addresses: AddressPolicy = AddressPolicy()
    # Credentials may go over plain ftp:// or http:// (MOLSTREAM_ALLOW_INSECURE_CREDENTIALS,
    # given by the operator only when both the IngestRequest and its administrator allow it).
    insecure_credentials: bool = False


def credentials_from_env(env: dict[str, str] | None = None) -> Credentials:
    env = os.environ if env is None else env

    def read(name: str) -> str | None:
        path = env.get(f"MOLSTREAM_SOURCE_{name}_FILE")
        if path:
            return Path(path).read_text().strip()
        return env.get(f"MOLSTREAM_SOURCE_{name}") or None

    def read_if_there(name: str) -> str | None:
        # The operator mounts a Secret's optional keys as files that may be absent.
        path = env.get(f"MOLSTREAM_SOURCE_{name}_FILE")
        return Path(path).read_text() if path and Path(path).is_file() else None

    passphrase = read_if_there("SSH_PASSPHRASE")
    return Credentials(read("USERNAME"), read("PASSWORD"), read_if_there("SSH_KEY"),
                       passphrase.strip() if passphrase else None)


def redact(url: str) -> str:
    """The URL without its password and the values of its secret query parameters
    (molstream.redaction: presigned-URL signatures, tokens, ...)."""
    return redact_url(url)


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


def check_host(url: str, limits: Limits, *, via: str | None = None) -> None:
    """The URL's host on the allow-list; ``via``: the URL that redirected to it (the target,
    the server's words, is shown as its scheme, host and port only: site)."""
    host = urlsplit(url).hostname or ""
    if not host_allowed(host, limits.allowed_hosts):
        shown = f"a redirect to {site(url)}" if via else redact(url)
        raise FetchError(f"{shown}: host {host!r} is not on the allow-list "
                         f"(MOLSTREAM_ALLOWED_HOSTS: {', '.join(limits.allowed_hosts)})")


def site(url: str) -> str:
    """scheme://host[:port] of a URL a server gave (a redirect's Location): its path and query
    may carry what the server should not tell, so they are never shown."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    host = parts.hostname or ""
    if not re.fullmatch(r"[A-Za-z0-9.:_-]{1,253}", host):
        host = "(a host name not shown)"
    elif ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}" if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]{0,15}",
                                                             parts.scheme) else "(a URL)"


INSECURE_SCHEMES = ("ftp", "http")


def check_credentials(url: str, creds: Credentials, limits: Limits) -> None:
    """Credentials never go over plain ftp:// or http:// unless allowed
    (MOLSTREAM_ALLOW_INSECURE_CREDENTIALS): refused before any connection is made."""
    scheme = urlsplit(url).scheme
    if scheme in INSECURE_SCHEMES and (creds.username or creds.password) and (
            not limits.insecure_credentials):
        raise FetchError(
            f"{redact(url)}: credentials are never sent over plain {scheme}:// (they would "
            f"cross the network readable by anyone on the way): use "
            f"{'ftps' if scheme == 'ftp' else 'https'}://, or allow it explicitly "
            "(the IngestRequest's spec.allowInsecureCredentials and the operator's "
            "MOLSTREAM_ALLOW_INSECURE_CREDENTIALS; MOLSTREAM_ALLOW_INSECURE_CREDENTIALS=true for "
            "the fetcher alone)")


def connect_checked(host: str, port: int, limits: Limits, timeout: float | None):
    """A TCP connection to ``host`` at an address the policy allows (checked, then connected
    to as is: no second resolution); FetchError when refused, OSError when unreachable."""
    try:
        return limits.addresses.connect(host, port, timeout)
    except AddressRefused as e:
        raise FetchError(str(e)) from None


class Budget:
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
            raise timed_out(self.url, self.limits)
        if self.progress:
            self.progress(self.done, self.total)


def timed_out(url: str, limits: Limits) -> FetchError:
    return FetchError(f"{redact(url)}: download took longer than {limits.timeout_s:.0f}s "
                      "(MOLSTREAM_DOWNLOAD_TIMEOUT_S)")


def socket_timeout(limits: Limits, deadline: float) -> float:
    """Per-operation socket timeout: never past the download's deadline, so that a server that
    stops sending (or never answers) cannot hold the download beyond it."""
    return max(0.05, min(limits.socket_timeout_s, deadline - time.monotonic()))


def tls_context(limits: Limits) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(limits.ca_file) if limits.ca_file else None)


def reason(e: BaseException) -> str:
    """A network or I/O error in words of our own or the OS's: never the peer's (an SFTP
    server's status message is an OSError's text; the full text goes to the debug log)."""
    log.debug("%s: %s", type(e).__name__, e)
    if isinstance(e, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, socket.gaierror):
        return f"unknown host ({e.strerror})"
    if isinstance(e, ssl.SSLError):
        return f"TLS failed ({e.reason or type(e).__name__})"
    if isinstance(e, EOFError):
        return "the connection closed early"
    if isinstance(e, OSError) and isinstance(e.errno, int) and e.errno > 0:
        return os.strerror(e.errno)
    return f"an I/O error ({type(e).__name__})"


#: An HTTP validator (ETag, Last-Modified) or an FTP modification time kept in the status
#: (status.runSource) only when it is a token: printable ASCII without spaces, at most 128.
_TOKEN = re.compile(r"[\x21-\x7e]{1,128}")
#: ... or a date as HTTP writes it (IMF-fixdate, RFC 850, asctime).
_DAY, _LONG_DAY = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)", "(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day"
_MONTH = "(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_HTTP_DATE = re.compile(
    rf"{_DAY}, \d{{2}} {_MONTH} \d{{4}} \d{{2}}:\d{{2}}:\d{{2}} GMT"
    rf"|{_LONG_DAY}, \d{{2}}-{_MONTH}-\d{{2}} \d{{2}}:\d{{2}}:\d{{2}} GMT"
    rf"|{_DAY} {_MONTH} [ \d]\d \d{{2}}:\d{{2}}:\d{{2}} \d{{4}}")


def validator_value(value: str | None, *, date: bool = False) -> str | None:
    """``value`` when it is a token (a date as HTTP writes it too, with ``date``), else None:
    a server's header is its own words, shown to whoever may read the status."""
    if not value:
        return None
    if _TOKEN.fullmatch(value) or (date and _HTTP_DATE.fullmatch(value)):
        return value
    log.debug("a validator dropped: not a token: %r", value[:200])
    return None


@dataclass(frozen=True)
class Validator:
    """What identifies the version of a resource a partial download holds the start of: the
    HTTP ETag or Last-Modified date, or the FTP modification time (MDTM) and size. Kept beside
    the partial file; a resume asks the server for the rest only of that same version."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    mdtm: str | None = None
    size: int | None = None

    @staticmethod
    def path(dest: Path) -> Path:
        return dest.with_name(dest.name + ".validator")

    @classmethod
    def load(cls, dest: Path, url: str) -> Validator | None:
        try:
            found = cls(**json.loads(cls.path(dest).read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return found if found.url == url else None

    def save(self, dest: Path) -> None:
        tmp = self.path(dest).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, self.path(dest))

    @classmethod
    def forget(cls, dest: Path) -> None:
        cls.path(dest).unlink(missing_ok=True)


def partial(dest: Path) -> int:
    return dest.stat().st_size if dest.exists() else 0


def without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    if ":" in (parts.hostname or ""):
        netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
