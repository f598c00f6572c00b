"""HTTP and HTTPS sources, on httpx: streamed to disk, connect and read timeouts of their own.

Redirects are followed by hand, up to MAX_REDIRECTS, so that each hop is checked before it is
taken: the scheme (http or https, and never from https down to http) and the host (the
allow-list, MOLSTREAM_ALLOWED_HOSTS). Credentials go only to the origin (scheme, host, port)
they were given for: a redirect elsewhere is followed without them.

Every connection goes to an address the policy allows (molstream.addresses): the host of each
hop is resolved, each address checked, and the connection made to the checked address itself
(httpcore's network backend is ours), while TLS still verifies the certificate for the host
name (SNI) and the Host header still names it. Through an HTTP(S)_PROXY (the administrator's,
from the environment) the proxy connects, not us: each hop's host is still resolved and
checked first (a name that does not resolve here is left to the proxy and its own rules).

An error answer says its status code and the standard reason only: nothing the server wrote
(reason phrase, body, a header, a malformed status or header line) reaches the message, the
status or Kafka. An answer that is not HTTP is named by a fixed phrase (the parser's own text,
which quotes the server's bytes, goes to the debug log only); a redirect's target is shown as
its scheme, host and port.

A retry resumes with `Range` only under `If-Range` with the ETag (a strong one) or the
Last-Modified date the first response gave: a server whose resource has changed since answers
with the whole new one (200), and the download starts over from byte zero. Without a
validator there is nothing to prove the resource the same, so there is no resume either.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from ..addresses import AddressRefused
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
    site,
    socket_timeout,
    tls_context,
    without_userinfo,
)

log = logging.getLogger(__name__)

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
    client = _client(limits, deadline)
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
        log.debug("cannot follow %s: %s", redact(current), e)
        shown = redact(current) if current == first else f"a redirect to {site(current)}"
        raise FetchError(f"{redact(url)}: cannot follow {shown}: not a URL httpx can "
                         f"request ({type(e).__name__})") from None
    except httpx.TransportError as e:
        if (tls := _tls_error(e)) is not None:
            raise FetchError(f"{redact(url)}: TLS failed ({tls})") from None
        where = site(current).partition("://")[2]
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
    client = _client(limits, deadline)
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


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to the checked addresses of a host only (molstream.addresses): httpcore hands
    us the URL's host name, we resolve it once, check every address, and connect to one of
    them; TLS is started afterwards by httpcore with the host name (SNI, certificate)."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            addresses = self._limits.addresses.resolve(host, port)
        except AddressRefused as e:
            raise FetchError(str(e)) from None
        except OSError as e:
            raise httpcore.ConnectError(reason(e)) from None
        last: Exception | None = None
        for _, address in addresses:
            try:
                return self._inner.connect_tcp(address, port, timeout=timeout,
                                               local_address=local_address,
                                               socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                last = e
        assert last is not None
        raise last

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise httpcore.ConnectError("unix sockets are not a source")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _CheckedProxy(httpx.BaseTransport):
    """A proxied request: its host's addresses are checked before the proxy is asked."""

    def __init__(self, inner: httpx.BaseTransport, limits: Limits) -> None:
        self._inner, self._limits = inner, limits

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        try:
            self._limits.addresses.resolve(host, request.url.port or 443)
        except AddressRefused as e:
            raise FetchError(str(e)) from None
        except (socket.gaierror, UnicodeError):
            pass  # not resolvable here: the proxy's to resolve, and to refuse
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def _pinned_transport(limits: Limits) -> httpx.HTTPTransport:
    context = tls_context(limits)
    transport = httpx.HTTPTransport(verify=context)
    # (httpx 0.28 takes no network backend: the pool it made is replaced by the same one
    # with ours; tests/integration/test_fetch_ssrf.py proves the connections go through it)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=context, max_connections=100, max_keepalive_connections=20,
        keepalive_expiry=5.0, http1=True, http2=False, network_backend=_PinnedBackend(limits))
    return transport


def _proxies(limits: Limits) -> dict[str, httpx.BaseTransport | None]:
    """HTTP(S)_PROXY, ALL_PROXY and NO_PROXY, read as httpx's trust_env reads them."""
    try:
        from httpx._utils import get_environment_proxies
    except ImportError:  # pragma: no cover - a future httpx: no proxies rather than unchecked
        return {}
    mounts: dict[str, httpx.BaseTransport | None] = {}
    for pattern, proxy in get_environment_proxies().items():
        mounts[pattern] = None if proxy is None else _CheckedProxy(
            httpx.HTTPTransport(verify=tls_context(limits), proxy=proxy), limits)
    return mounts


def _client(limits: Limits, deadline: float) -> httpx.Client:
    timeout = socket_timeout(limits, deadline)
    # Accept-Encoding identity: the bytes on disk are the resource's, so ranges line up and a
    # .csv.gz is not unwrapped (or a .csv wrapped) on the way.
    return httpx.Client(
        transport=_pinned_transport(limits), mounts=_proxies(limits), follow_redirects=False,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0)),
        headers={"User-Agent": "molstream", "Accept-Encoding": "identity"})


def _next_hop(url: str, current: str, response: httpx.Response, limits: Limits) -> str:
    location = response.headers.get("Location")
    if not location:
        raise FetchError(f"{redact(url)}: HTTP {response.status_code} redirect without a "
                         "Location")
    try:
        target = urljoin(current, location)
        scheme = urlsplit(target).scheme
    except ValueError:
        raise FetchError(f"{redact(url)}: HTTP {response.status_code} redirect to a Location "
                         "that is not a URL") from None
    if scheme not in ("http", "https"):
        shown = scheme if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]{0,15}", scheme) else (
            "other" if scheme else "relative")
        raise FetchError(f"{redact(url)}: redirected to a {shown} URL: only "
                         "http and https are followed")
    if urlsplit(current).scheme == "https" and scheme == "http":
        raise FetchError(f"{redact(url)}: redirected from https to http ({site(target)}): "
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
        raise FetchError(f"{redact(url)}: HTTP {status} {_phrase(status)}")
    if status == 206 and (_content_range_start(response) != have
                          or not _same_version(saved, response)):
        _start_over(dest)  # (a server or proxy that honours Range but not If-Range)
        raise Transient("the server sent another range, or another version, than asked for")
    if status == 200 and have:
        _start_over(dest)  # the whole resource: a new version, or a server that ignores Range
        have = 0
    length = response.headers.get("Content-Length")
    if length is not None and not length.strip().isdigit():
        raise FetchError(f"{redact(url)}: the server's Content-Length is not a number")
    total = have + int(length) if length is not None else None
    budget = Budget(url, have, total, limits, deadline, progress)  # (checks the space first)
    etag = response.headers.get("ETag")  # (kept to resume with; Identity drops a non-token)
    if have == 0:
        Validator(first, etag=etag if etag and not etag.startswith("W/") else None,
                  last_modified=response.headers.get("Last-Modified")).save(dest)
    with open(dest, "ab" if have else "wb") as out:
        for block in response.iter_raw():  # as it arrives: a trickle meets the deadline too
            out.write(block)
            budget.add(len(block))
    if total is not None and partial(dest) < total:
        raise Transient(f"connection closed at byte {partial(dest)} of {total}")


def _phrase(status: int) -> str:
    """The standard reason phrase: never the server's own words."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "(a status code of no standard meaning)"


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
    """OpenSSL's reason (CERTIFICATE_VERIFY_FAILED, WRONG_VERSION_NUMBER, ...), if TLS failed:
    a fixed word of OpenSSL's, never the text of an answer."""
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return getattr(seen, "reason", None) or type(seen).__name__
        seen = seen.__cause__ or seen.__context__
    if isinstance(e, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(e):
        return "CERTIFICATE_VERIFY_FAILED"
    return None


#: What an httpx transport error says, in our words: its own text quotes the server's bytes
#: ("illegal status line: bytearray(b'...')"), which go to the debug log only.
_TRANSPORT_ERRORS: tuple[tuple[type[httpx.TransportError], str], ...] = (
    (httpx.RemoteProtocolError, "the server's answer is not valid HTTP (a protocol error)"),
    (httpx.LocalProtocolError, "the request could not be sent (an HTTP protocol error)"),
    (httpx.ProxyError, "the proxy failed the request"),
    (httpx.ReadError, "the connection failed while reading the answer"),
    (httpx.WriteError, "the connection failed while sending the request"),
    (httpx.CloseError, "the connection failed while closing"),
    (httpx.ConnectError, "the connection failed"),
)


def _cause(e: BaseException) -> str:
    log.debug("HTTP transport error: %s: %s", type(e).__name__, e)
    seen = e
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__
    if isinstance(seen, OSError):
        return reason(seen)  # (the OS's words)
    if isinstance(e, httpx.RemoteProtocolError) and str(e).startswith("Server disconnected"):
        return "the server closed the connection without an answer"
    for kind, phrase in _TRANSPORT_ERRORS:
        if isinstance(e, kind):
            return phrase
    return f"an HTTP transport error ({type(e).__name__})"
