"""The cheap questions asked before a download: which file a URL glob stands for, and what the
server says of a file (molstream.fetch.identity), so that a source already loaded is not
downloaded again.

    url, before, unchanged = resolve(url, credentials=c, limits=l, loaded=loaded)
    before = before or probe(url, credentials=c, limits=l)

`probe` asks HTTP(S) servers with a HEAD request (ETag, Last-Modified, Content-Length) and FTP
servers with SIZE and MDTM; a server that cannot answer gives None, and the download goes on.
"""

from __future__ import annotations

import dataclasses
import ftplib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .common import (
    Credentials,
    FetchError,
    Limits,
    Transient,
    check_credentials,
    check_host,
    redact,
)
from .ftp import FtpSession, describe
from .glob import LISTERS, choose, expand, has_glob, refuse_glob
from .http import http_probe
from .identity import Identity

__all__ = ["PROBES", "probe", "resolve"]

log = logging.getLogger(__name__)

#: How long the questions may take, at most (within the download's own time cap).
PROBE_TIMEOUT_S = 60.0


def _credentials(url: str, credentials: Credentials | None) -> Credentials:
    parts, credentials = urlsplit(url), credentials or Credentials()
    return dataclasses.replace(
        credentials,
        username=unquote(parts.username) if parts.username else credentials.username,
        password=unquote(parts.password) if parts.password else credentials.password)


def _ftp_probe(url: str, creds: Credentials, limits: Limits, deadline: float) -> Identity | None:
    session = FtpSession(url, creds, limits, deadline)
    try:
        stat = session.stat(unquote(urlsplit(url).path))
    finally:
        session.close()
    return None if stat is None else Identity.of(url, last_modified=stat[0], size=stat[1])


def _http_probe(url: str, creds: Credentials, limits: Limits,
                deadline: float) -> Identity | None:
    said = http_probe(url, creds, limits, deadline)
    if said is None:
        return None
    length = said.get("size")
    return Identity.of(url, etag=said.get("etag"), last_modified=said.get("last_modified"),
                       size=int(length) if length and length.isdigit() else None)


#: scheme -> probe(url, credentials, limits, deadline) -> Identity | None.
PROBES: dict[str, Callable[..., Identity | None]] = {
    "ftp": _ftp_probe, "ftps": _ftp_probe, "http": _http_probe, "https": _http_probe}


def _deadline(limits: Limits) -> float:
    return time.monotonic() + min(limits.timeout_s, PROBE_TIMEOUT_S)


def probe(url: str, *, credentials: Credentials | None = None,
          limits: Limits) -> Identity | None:
    """What the server says of the file now, or None when it says nothing usable."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        path = Path(unquote(parts.path))
        try:
            st = path.stat()
        except OSError:
            return None
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(st.st_mtime_ns // 10**9))
        return Identity.of(url, last_modified=f"{stamp}.{st.st_mtime_ns % 10**9:09d}",
                           size=st.st_size)
    ask = PROBES.get(parts.scheme)
    if ask is None:
        return None
    check_host(url, limits)
    creds = _credentials(url, credentials)
    check_credentials(url, creds, limits)
    try:
        return ask(url, creds, limits, _deadline(limits))
    except (Transient, OSError, EOFError) as e:
        log.info("%s: could not ask the server about the file (%s); downloading it",
                 redact(url), describe(e))
        return None
    except Exception as e:  # noqa: BLE001 - ftplib's replies: the download says it better
        if isinstance(e, FetchError):
            raise
        log.info("%s: the server did not say what the file is (%s)", redact(url), describe(e))
        return None


def resolve(url: str, *, credentials: Credentials | None = None, limits: Limits,
            loaded: Sequence[Identity] = ()) -> tuple[str, Identity | None, str | None]:
    """(the file's URL, what the listing said of it, None) for a URL glob, or (url, None,
    why) when the newest match was loaded already; (url, None, None) for a plain URL."""
    refuse_glob(url)
    if not has_glob(url):
        return url, None, None
    check_host(url, limits)
    creds = _credentials(url, credentials)
    check_credentials(url, creds, limits)
    open_session = LISTERS[urlsplit(url).scheme]
    for attempt in range(limits.retries + 1):
        try:
            session = open_session(url, creds, limits, _deadline(limits))
            try:
                matches = expand(url, session)
            finally:
                session.close()
            break
        except (Transient, *ftplib.all_errors) as e:
            # (an ftplib error is the server's reply: its code and our words for it only)
            if attempt == limits.retries:
                raise FetchError(f"{redact(url)}: cannot list the matches: "
                                 f"{describe(e)}") from None
            wait = min(limits.backoff_s * 2**attempt, 30.0)
            log.warning("listing %s failed (%s); retry %d/%d in %.1fs", redact(url),
                        describe(e), attempt + 1, limits.retries, wait)
            time.sleep(wait)
    match, why = choose(url, matches, loaded)
    if match is None:
        return url, None, why
    log.info("%s: %s is %s", redact(url), why, redact(match.url))
    return match.url, match.identity, None
