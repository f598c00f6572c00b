"""HTTP and HTTPS sources, on httpx: streamed to disk, connect and read timeouts of their own.

Redirects are followed by hand, up to MAX_REDIRECTS, so that each hop is checked before it is
taken: the scheme (http or https, and never from https down to http) and the host (the
allow-list, MOLSTREAM_ALLOWED_HOSTS). Credentials go only to the origin (scheme, host, port)
they were given for: a redirect elsewhere is followed without them.

A retry resumes with `Range` only under `If-Range` with the ETag (a strong one) or the
Last-Modified date the first response gave: a server whose resource has changed since answers
with the whole new one (200), and the download starts over from byte zero. Without a
validator there is nothing to prove the resource the same, so there is no resume either.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from .common import (
    Budget,
    Credentials,
    FetchError,
    Limits,
    Progress,
    Transient,
    Validator,
    check_host,
    partial,
    reason,
    redact,
    socket_timeout,
    tls_context,
    without_userinfo,
)

MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)


def http_fetch(url: str, dest: Path, creds: Credentials, limits: Limits, deadline: float,
               progress: Progress | None) -> None:
    first = without_userinfo(url)
    origin = _origin(first)
    have = partial(dest)
    saved = Validator.load(dest, first) if have else None
    validator = saved and (saved.etag or saved.last_modified)
    if have and not validator:
        have = 0  # nothing proves the server still has what the partial file began
    timeout = socket_timeout(limits, deadline)
    # trust_env: HTTP(S)_PROXY and NO_PROXY are honoured (certificates come from `verify`).
    # Accept-Encoding identity: the bytes on disk are the resource's, so ranges line up and a
    # .csv.gz is not unwrapped (or a .csv wrapped) on the way.
    client = httpx.Client(
        verify=tls_context(limits), trust_env=True, follow_redirects=False,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0)),
        headers={"User-Agent": "molstream", "Accept-Encoding": "identity"})
    current = first
    try:
        for _ in range(MAX_REDIRECTS + 1):
            headers = {}
            if have:
                headers.update({"Range": f"bytes={have}-", "If-Range": validator})
            auth = (creds.username, creds.password or "") if (
                creds.username and _origin(current) == origin) else None
            with client.stream("GET", current, headers=headers, auth=auth) as response:
                if response.status_code in _REDIRECTS:
                    current = _next_hop(url, current, response, limits)
                    continue
                _save_body(url, first, dest, have, saved, response, limits, deadline,
                           progress)
                return
        raise FetchError(f"{redact(url)}: more than {MAX_REDIRECTS} redirects (a loop?)")
    except httpx.TimeoutException:
        raise Transient("timed out") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as e:
        raise FetchError(f"{redact(url)}: cannot follow {redact(current)}: {e}") from None
    except httpx.TransportError as e:
        if (tls := _tls_error(e)) is not None:
            raise FetchError(f"{redact(url)}: TLS failed ({tls})") from None
        where = urlsplit(current).netloc
        if isinstance(e, httpx.ConnectError):
            raise Transient(f"cannot connect to {where}: {_cause(e)}") from None
        raise Transient(_cause(e)) from None
    finally:
        client.close()


def http_probe(url: str, creds: Credentials, limits: Limits,
               deadline: float) -> dict[str, str | None] | None:
    """What a HEAD request says of the resource (ETag, Last-Modified, Content-Length), after
    the redirects a GET would follow, each hop checked the same way; None when the server
    does not answer a HEAD with 200 (the download then says why, or finds out itself)."""
    origin = _origin(without_userinfo(url))
    timeout = socket_timeout(limits, deadline)
    client = httpx.Client(
        verify=tls_context(limits), trust_env=True, follow_redirects=False,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0)),
        headers={"User-Agent": "molstream", "Accept-Encoding": "identity"})
    current = without_userinfo(url)
    try:
        for _ in range(MAX_REDIRECTS + 1):
            auth = (creds.username, creds.password or "") if (
                creds.username and _origin(current) == origin) else None
            response = client.head(current, auth=auth)
            if response.status_code in _REDIRECTS:
                current = _next_hop(url, current, response, limits)
                continue
            if response.status_code != 200:
                return None
            return {"etag": response.headers.get("ETag"),
                    "last_modified": response.headers.get("Last-Modified"),
                    "size": response.headers.get("Content-Length")}
        return None
    except (httpx.HTTPError, ValueError):
        return None  # the download retries, or fails with the reason
    finally:
        client.close()


def _next_hop(url: str, current: str, response: httpx.Response, limits: Limits) -> str:
    location = response.headers.get("Location")
    if not location:
        raise FetchError(f"{redact(url)}: HTTP {response.status_code} redirect without a "
                         "Location")
    target = urljoin(current, location)
    scheme = urlsplit(target).scheme
    if scheme not in ("http", "https"):
        raise FetchError(f"{redact(url)}: redirected to a {scheme or 'relative'} URL "
                         f"({redact(target)}): only http and https are followed")
    if urlsplit(current).scheme == "https" and scheme == "http":
        raise FetchError(f"{redact(url)}: redirected from https to http ({redact(target)}): "
                         "a downgrade, refused")
    check_host(target, limits, via=current)
    return target


def _save_body(url: str, first: str, dest: Path, have: int, saved: Validator | None,
               response: httpx.Response, limits: Limits, deadline: float,
               progress: Progress | None) -> None:
    status = response.status_code
    if status == 416 and have:
        # Nothing after byte `have`: the partial file is whole if the server's size says so.
        total = _content_range_total(response)
        if total == have:
            return
        _start_over(dest)
        raise Transient(f"the server has {total} bytes, the partial file {have}: starting over")
    if status in (401, 403):
        raise FetchError(f"{redact(url)}: access refused (HTTP {status}): check the username "
                         "and password")
    if status == 404:
        raise FetchError(f"{redact(url)}: no such file (HTTP 404)")
    if status >= 500 or status == 429:
        raise Transient(f"HTTP {status}")
    if status not in (200, 206):
        raise FetchError(f"{redact(url)}: HTTP {status} {response.reason_phrase}")
    if status == 206 and (_content_range_start(response) != have
                          or not _same_version(saved, response)):
        _start_over(dest)  # (a server or proxy that honours Range but not If-Range)
        raise Transient("the server sent another range, or another version, than asked for")
    if status == 200 and have:
        _start_over(dest)  # the whole resource: a new version, or a server that ignores Range
        have = 0
    length = response.headers.get("Content-Length")
    total = have + int(length) if length is not None else None
    budget = Budget(url, have, total, limits, deadline, progress)  # (checks the space first)
    etag = response.headers.get("ETag")
    if have == 0:
        Validator(first, etag=etag if etag and not etag.startswith("W/") else None,
                  last_modified=response.headers.get("Last-Modified")).save(dest)
    with open(dest, "ab" if have else "wb") as out:
        for block in response.iter_raw():  # as it arrives: a trickle meets the deadline too
            out.write(block)
            budget.add(len(block))
    if total is not None and partial(dest) < total:
        raise Transient(f"connection closed at byte {partial(dest)} of {total}")


def _same_version(saved: Validator | None, response: httpx.Response) -> bool:
    """Whatever validators the 206 carries match those the partial file was started with."""
    etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
    return saved is not None and (not (etag and saved.etag) or etag == saved.etag) and (
        not (modified and saved.last_modified) or modified == saved.last_modified)


def _start_over(dest: Path) -> None:
    dest.unlink(missing_ok=True)
    Validator.forget(dest)


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return (parts.scheme, (parts.hostname or "").lower(),
            parts.port or (443 if parts.scheme == "https" else 80))


def _content_range_start(response: httpx.Response) -> int | None:
    spec = response.headers.get("Content-Range", "")  # bytes first-last/total
    try:
        return int(spec.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _content_range_total(response: httpx.Response) -> int | None:
    spec = response.headers.get("Content-Range", "")  # bytes */total
    try:
        return int(spec.rpartition("/")[2])
    except ValueError:
        return None


def _tls_error(e: BaseException) -> str | None:
    seen = e
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return getattr(seen, "reason", None) or str(seen)
        seen = seen.__cause__ or seen.__context__
    text = str(e)
    return text if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text else None


def _cause(e: BaseException) -> str:
    seen = e
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__
    return reason(seen) if isinstance(seen, OSError) else (str(e) or type(e).__name__)
