"""No SSRF: the fetcher connects only to addresses its policy allows, the very ones it checked,
against real servers on loopback (which the default policy refuses, as any non-public address).

Each refused case also proves nothing was asked of the server: its request log stays empty.
"""

from __future__ import annotations

import socket
import threading
import warnings

import pytest
from molstream.addresses import AddressPolicy
from molstream.fetch import Credentials, FetchError, Limits, download
from molstream.fetch.check import probe
from molstream.fetcher import IngestFailed

pytestmark = pytest.mark.ftp

LOOPBACK = AddressPolicy.parse(allowed_networks="127.0.0.0/8,::1/128")
ONLY_127_0_0_1 = AddressPolicy.parse(allowed_networks="127.0.0.1/32")
BODY = b"activity_id,molecule_id\n1,2\n"


STRICT = AddressPolicy()


def _limits(policy: AddressPolicy = STRICT, **kw) -> Limits:
    return Limits(max_bytes=10**6, timeout_s=30, retries=0, addresses=policy, **kw)


@pytest.fixture
def source(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    (root / "a.csv").write_bytes(BODY)
    return root


def test_loopback_is_refused_by_default_before_any_request(source, http_server, ftp_server,
                                                           tmp_path):
    http = http_server(source)
    with pytest.raises(FetchError) as refused:
        download(http.url("a.csv"), tmp_path / "a", limits=_limits())
    assert str(refused.value) == (
        "host '127.0.0.1' resolves to 127.0.0.1, a loopback address; refused: set "
        "MOLSTREAM_ALLOWED_NETWORKS or MOLSTREAM_INTERNAL_HOSTS to allow it")
    with pytest.raises(FetchError, match="host 'localhost' resolves to (127.0.0.1|::1), a "
                                         "loopback address; refused"):
        download(f"http://localhost:{http.port}/a.csv", tmp_path / "b", limits=_limits())
    with pytest.raises(FetchError, match="resolves to 127.0.0.1, a loopback address"):
        probe(http.url("a.csv"), limits=_limits())  # the HEAD probe too
    assert http.requests == []
    ftp = ftp_server(source)
    for url in (ftp.url("a.csv", with_credentials=False), ftp.url("*.csv", with_credentials=False)):
        with pytest.raises(FetchError, match="resolves to 127.0.0.1, a loopback address"):
            from molstream.fetch.check import resolve
            resolve(url, limits=_limits()) if "*" in url else download(
                url, tmp_path / "c", limits=_limits())
    # allowed explicitly, the same downloads work
    assert download(http.url("a.csv"), tmp_path / "d", limits=_limits(LOOPBACK)).read_bytes() \
        == BODY
    assert download(ftp.url("a.csv", with_credentials=False), tmp_path / "e",
                    credentials=Credentials(ftp.user, ftp.password),
                    limits=_limits(LOOPBACK, insecure_credentials=True)).read_bytes() == BODY


def test_internal_hosts_allow_a_name_not_its_address(source, http_server, tmp_path):
    http = http_server(source)
    named = AddressPolicy.parse(internal_hosts="localhost")
    assert download(f"http://localhost:{http.port}/a.csv", tmp_path / "a",
                    limits=_limits(named)).read_bytes() == BODY
    with pytest.raises(FetchError, match="host '127.0.0.1' resolves to 127.0.0.1"):
        download(http.url("a.csv"), tmp_path / "b", limits=_limits(named))
    denied = AddressPolicy.parse(internal_hosts="localhost", denied_networks="127.0.0.0/8,::1")
    with pytest.raises(FetchError, match="in a denied network .MOLSTREAM_DENIED_NETWORKS."):
        download(f"http://localhost:{http.port}/a.csv", tmp_path / "c", limits=_limits(denied))


def test_each_redirect_is_checked_before_it_is_followed(source, http_server, tmp_path):
    """Loopback 127.0.0.1 allowed, nothing else: a redirect to the metadata address, to
    another loopback address or to a private one is refused without a connection."""
    http = http_server(source, redirects={
        "/metadata.csv": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "/other.csv": "/a.csv",  # (relative: same host, followed)
    })
    port = http.port
    http.redirects["/sibling.csv"] = f"http://127.0.0.2:{port}/a.csv"
    http.redirects["/mapped.csv"] = f"http://[::ffff:169.254.169.254]:{port}/a.csv"
    http.redirects["/private.csv"] = f"http://10.0.0.1:{port}/a.csv"
    limits = _limits(ONLY_127_0_0_1)
    assert download(http.url("other.csv"), tmp_path / "ok", limits=limits).read_bytes() == BODY
    cases = {
        "metadata.csv": "resolves to 169.254.169.254, a link-local address (cloud metadata)",
        "sibling.csv": "resolves to 127.0.0.2, a loopback address",
        "mapped.csv": "resolves to ::ffff:a9fe:a9fe, an IPv4-mapped address of 169.254.169.254, "
                      "a link-local address (cloud metadata)",
        "private.csv": "resolves to 10.0.0.1, a private address",
    }
    for path, why in cases.items():
        before = len(http.requests)
        with pytest.raises(FetchError) as refused:
            download(http.url(path), tmp_path / path, limits=limits)
        assert why in str(refused.value) and "refused" in str(refused.value)
        assert [r["path"] for r in http.requests[before:]] == [f"/{path}"]  # the first hop only


def test_the_checked_address_is_the_one_connected_to(source, http_server, tmp_path,
                                                     monkeypatch):
    """DNS rebinding: a name that resolves to an allowed address when checked and to the
    metadata address afterwards. The fetcher resolves once per connection and connects to what
    it checked, keeping the name for the Host header. (A patched resolver: no DNS server here.)"""
    http = http_server(source)
    real = socket.getaddrinfo
    answers: list[str] = []

    def rebinding(host, port, *args, **kwargs):
        if host == "rebind.test":
            address = "127.0.0.1" if not answers else "169.254.169.254"
            answers.append(address)
            return real(address, port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    out = download(f"http://rebind.test:{http.port}/a.csv", tmp_path / "a",
                   limits=_limits(ONLY_127_0_0_1))
    assert out.read_bytes() == BODY
    assert answers == ["127.0.0.1"]  # resolved once: nothing resolved it again to connect
    assert http.requests[-1]["Host"] == f"rebind.test:{http.port}"


def test_tls_is_verified_for_the_host_name_while_connected_by_address(
        source, http_server, ftp_server, tmp_path, tls_ca_file):
    """The certificate names DNS:localhost and IP:127.0.0.1; the connection goes to the checked
    address, and the certificate is still checked against the name in the URL (SNI too)."""
    https = http_server(source, tls=True)
    ftps = ftp_server(source, tls=True)
    limits = _limits(LOOPBACK, ca_file=tls_ca_file)
    assert download(f"https://localhost:{https.port}/a.csv", tmp_path / "a",
                    limits=limits).read_bytes() == BODY
    assert download(f"ftps://localhost:{ftps.port}/a.csv", tmp_path / "b",
                    credentials=Credentials(ftps.user, ftps.password),
                    limits=limits).read_bytes() == BODY
    # a name the certificate does not hold fails verification, though the address is the same
    named = AddressPolicy.parse(allowed_networks="127.0.0.0/8,::1/128",
                                internal_hosts="localhost.localdomain")
    try:
        socket.getaddrinfo("localhost.localdomain", 80)
    except socket.gaierror:
        return
    with pytest.raises(FetchError, match="TLS failed"):
        download(f"https://localhost.localdomain:{https.port}/a.csv", tmp_path / "c",
                 limits=_limits(named, ca_file=tls_ca_file))


def test_ftp_data_connections_ignore_the_address_pasv_names(source, tmp_path):
    """A server whose PASV reply names the metadata address: the data connection still goes to
    the control connection's (checked) peer."""
    with warnings.catch_warnings():  # (pyftpdlib imports asyncore, deprecated)
        warnings.simplefilter("ignore", DeprecationWarning)
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.servers import FTPServer

    authorizer = DummyAuthorizer()
    authorizer.add_anonymous(str(source))
    handler = type("Masquerading", (FTPHandler,), {
        "authorizer": authorizer, "masquerade_address": "169.254.169.254"})
    server = FTPServer(("127.0.0.1", 0), handler)
    port = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.2},
                              daemon=True)
    thread.start()
    try:
        out = download(f"ftp://127.0.0.1:{port}/a.csv", tmp_path / "a",
                       limits=_limits(ONLY_127_0_0_1))
        assert out.read_bytes() == BODY
    finally:
        server.close_all()
        thread.join(5)


def test_credentials_are_not_sent_over_plain_http_or_ftp(source, http_server, ftp_server,
                                                         tmp_path):
    http = http_server(source, user="u", password="pw")
    ftp = ftp_server(source)
    for url, creds in ((http.url("a.csv"), Credentials("u", "pw")),
                       (ftp.url("a.csv", with_credentials=False),
                        Credentials(ftp.user, ftp.password)),
                       (ftp.url("a.csv"), None)):  # user:password@ in the URL: the same
        with pytest.raises(FetchError, match="credentials are never sent over plain"):
            download(url, tmp_path / "a", credentials=creds, limits=_limits(LOOPBACK))
    assert http.requests == []


def test_error_answers_never_reach_the_status_or_kafka(make_pipeline, source, http_server):
    """What a refused or failing source says stays out of the failed event (the operator's
    status message) and of the rejected topic: the reason is short and ours."""
    import http.server

    class Chatty(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(418, "redis_version:7.2.4 requirepass=hunter2")
            self.send_header("Content-Length", "27")
            self.end_headers()
            self.wfile.write(b"-NOAUTH Authentication req.")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Chatty)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    plain = http_server(source, redirects={"/meta.csv": "http://169.254.169.254/latest/"})
    try:
        p = make_pipeline(allowed_networks=("127.0.0.1/32",))
        with pytest.raises(IngestFailed) as chatty:
            p.fetch(f"http://127.0.0.1:{server.server_port}/a.csv", "chatty")
        assert "HTTP 418 I'm a Teapot" in str(chatty.value)
        with pytest.raises(IngestFailed) as meta:
            p.fetch(plain.url("meta.csv"), "meta")
        assert "169.254.169.254, a link-local address (cloud metadata)" in str(meta.value)
        events = p.read_topic(p.settings.topics.events)
        failed = [e for e in events if e.get("type") == "failed"]
        assert len(failed) == 2
        text = repr(events)
        for said in ("redis_version", "hunter2", "NOAUTH"):
            assert said not in text
        assert p.read_topic(p.settings.topics.rejected, timeout_s=2) == []
    finally:
        server.shutdown()
        server.server_close()


SECRETS = ("SECRET_TOKEN", "hunter2", "SECRET-LINE", "SECRET-STATUS", "SECRET-FTP", "root:x",
           "SECRET_ETAG", "SECRET-MODIFIED", "/bin/bash")


class _RawHttp:
    """A server on 127.0.0.1 answering each path with bytes of its own choosing, HTTP or not
    (to a HEAD, the head of the answer only)."""

    def __init__(self, answers: dict[str, bytes]) -> None:
        self.answers = answers
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                request = b""
                try:
                    while b"\r\n\r\n" not in request:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        request += chunk
                    method, path = request.split(b" ", 2)[:2]
                    answer = self.answers.get(path.decode().lstrip("/"), b"")
                    if method == b"HEAD":
                        answer = answer.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
                    conn.sendall(answer)
                except (OSError, ValueError):
                    pass

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


def _ftp_server_saying(root, reply: str):
    """pyftpdlib, logged in anonymously, answering SIZE and RETR with ``reply``."""
    with warnings.catch_warnings():  # (pyftpdlib imports asyncore, deprecated)
        warnings.simplefilter("ignore", DeprecationWarning)
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.servers import FTPServer

    authorizer = DummyAuthorizer()
    authorizer.add_anonymous(str(root))

    def refuse(self, line):
        self.respond(reply)

    handler = type("Chatty", (FTPHandler,), {
        "authorizer": authorizer, "ftp_SIZE": refuse, "ftp_RETR": refuse})
    server = FTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.2},
                              daemon=True)
    thread.start()
    return server, thread


def test_what_a_source_says_never_reaches_the_status_or_kafka(make_pipeline, tmp_path,
                                                              http_server):
    """A password file served as the CSV, answers that are not HTTP, an FTP server whose
    replies carry secrets, validators that are not tokens: the failed events (the operator's
    status message), the `identified` event (status.runSource) and the rejected topic hold
    none of it; the reasons say what kind of error it was."""
    srv = tmp_path / "srv"
    srv.mkdir()
    (srv / "passwd.csv").write_text(
        "root:x:0:0:SECRET_TOKEN=hunter2-abcdef:/root:/bin/bash\n"
        "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    plain = http_server(srv)
    body = b"activity_id,molecule_id\n1,2\n"  # (short of the required columns: fails at read)
    raw = _RawHttp({
        "status.csv": b"HTTP/1.1 SECRET-STATUS-LINE\r\n\r\n",
        "header.csv": b"HTTP/1.1 200 OK\r\nSECRET-LINE-FROM-INTERNAL-SERVICE no colon\r\n"
                      b"Content-Length: 4\r\n\r\nabcd",
        "validators.csv": b"HTTP/1.1 200 OK\r\nETag: \"a SECRET_ETAG b\"\r\n"
                          b"Last-Modified: SECRET-MODIFIED hunter2\r\nContent-Length: "
                          + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body,
    })
    ftp, ftp_thread = _ftp_server_saying(srv, "550 SECRET-FTP-REPLY hunter2 /etc/shadow")
    ftp_port = ftp.socket.getsockname()[1]
    try:
        p = make_pipeline(allowed_networks=("127.0.0.1/32",))
        reasons = {}
        for name, url in {
            "passwd": plain.url("passwd.csv"),
            "status": raw.url("status.csv"),
            "header": raw.url("header.csv"),
            "validators": raw.url("validators.csv"),
            "ftp": f"ftp://127.0.0.1:{ftp_port}/a.csv",
        }.items():
            with pytest.raises(IngestFailed) as failed:
                p.fetch(url, name)
            reasons[name] = failed.value.reason
        assert "the header has 1 column (not shown: not column names) when split on ','" \
            in reasons["passwd"]
        for name in ("status", "header"):
            assert "the server's answer is not valid HTTP (a protocol error)" in reasons[name]
        assert "required column" in reasons["validators"]
        assert "no such file (FTP 550: no such file or access refused)" in reasons["ftp"]
        events = p.read_topic(p.settings.topics.events)
        assert len([e for e in events if e.get("type") == "failed"]) == 5
        identified = [e for e in events if e.get("type") == "identified"
                      and e.get("ingest_id") == "validators"]
        assert identified[0].get("etag") is None and identified[0].get("last_modified") is None
        text = repr(events) + repr(reasons)
        for secret in SECRETS:
            assert secret not in text, secret
        assert p.read_topic(p.settings.topics.rejected, timeout_s=2) == []
    finally:
        raw.close()
        ftp.close_all()
        ftp_thread.join(5)
