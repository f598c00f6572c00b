"""An HTTP(S) file server over one directory, in a thread of this process: Range requests
(206, Content-Range, Accept-Ranges, If-Range), optional basic auth, and fault controls.

    with HttpServer(root, user="u", password="p", cut_after_bytes=300_000) as http:
        http.url("a.csv")      # "http://127.0.0.1:PORT/a.csv"
        http.cuts              # responses cut short on purpose so far

`cut_after_bytes` ends one response's connection that many body bytes in (once; set_faults()
re-arms it), `throttle_bps` slows every body. kill() also cuts every open connection at once.
`redirects` maps a path to the Location (absolute, or relative to the request) that a GET of it
is sent to with a 302, after the authorization check. `etag=False`, `last_modified=False` leave
those validators out of responses; `head=False` answers HEAD with 405.
"""

from __future__ import annotations

import base64
import email.utils
import hmac
import re
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ._process import free_port
from .certs import self_signed

CHUNK = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(first, last) inclusive; None to serve the whole file (no, several or malformed ranges,
    as RFC 9110 allows); "unsatisfiable" for a 416."""
    m = _RANGE.match(header.strip()) if header else None
    if not m or m.group(1) == m.group(2) == "":
        return None
    first, last = m.groups()
    if first == "":  # suffix: the last N bytes
        n = int(last)
        return (max(0, size - n), size - 1) if n and size else "unsatisfiable"
    first = int(first)
    last = size - 1 if last == "" else min(int(last), size - 1)
    if first >= size:
        return "unsatisfiable"
    return None if last < first else (first, last)


class HttpServer:
    host = "127.0.0.1"

    def __init__(self, root: Path, *, user: str | None = None, password: str | None = None,
                 tls: bool = False, port: int | None = None, cut_after_bytes: int = 0,
                 throttle_bps: int = 0, redirects: dict[str, str] | None = None,
                 etag: bool = True, last_modified: bool = True, head: bool = True) -> None:
        self.root, self.user, self.password, self.tls = Path(root), user, password, tls
        # Which validators responses carry, and whether HEAD is answered (else 405): servers
        # that say less about their files than this one does.
        self.etag, self.last_modified, self.head = etag, last_modified, head
        self.port = port or free_port()
        self.cert = self_signed()[0] if tls else None  # the CA file clients must trust
        self.cut_after_bytes, self.throttle_bps = cut_after_bytes, throttle_bps
        self._cut_armed = bool(cut_after_bytes)
        self.redirects = dict(redirects or {})
        self.cuts = 0
        self.requests: list[dict[str, str]] = []  # method, path and headers of each request
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def url(self, path: str = "", *, with_credentials: bool = False) -> str:
        auth = f"{self.user}:{self.password}@" if with_credentials and self.user else ""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{auth}{self.host}:{self.port}/{path.lstrip('/')}"

    def set_faults(self, *, cut_after_bytes: int | None = None,
                   throttle_bps: int | None = None) -> None:
        """Change faults for the next responses; a cut is armed again (once)."""
        with self._lock:
            if cut_after_bytes is not None:
                self.cut_after_bytes = cut_after_bytes
            if throttle_bps is not None:
                self.throttle_bps = throttle_bps
            self._cut_armed = bool(self.cut_after_bytes)

    def _take_cut(self, body_len: int) -> int:
        """Bytes to send before cutting this response, or 0 for no cut."""
        with self._lock:
            if self._cut_armed and 0 < self.cut_after_bytes < body_len:
                self._cut_armed = False
                self.cuts += 1
                return self.cut_after_bytes
            return 0

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> HttpServer:
        if self._server is not None:
            return self
        context = None
        if self.tls:
            cert, key = self_signed()
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
        self._server = _Server(("127.0.0.1", self.port), _handler(self), self, context)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,),
                                        daemon=True, name=f"http-{self.port}")
        self._thread.start()
        return self

    def stop(self, *, timeout_s: float = 5) -> None:
        """Stop accepting; let responses in flight finish for up to `timeout_s`, then reset."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        deadline = time.monotonic() + timeout_s
        while self._open and time.monotonic() < deadline:
            time.sleep(0.05)
        self._reset_open()
        self._server = None

    def kill(self) -> None:
        """Stop now: every open connection is cut, as if the process died."""
        if self._server is None:
            return
        self._reset_open()
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            (self._open.add if add else self._open.discard)(conn)

    def _reset_open(self) -> None:
        with self._lock:
            conns = list(self._open)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # the handler's thread closes it
            except OSError:
                pass

    def close(self) -> None:
        self.stop()

    def restart(self) -> HttpServer:
        self.stop()
        return self.start()

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<HttpServer {self.url()} {'running' if self.running else 'stopped'}>"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, handler, owner: HttpServer, context: ssl.SSLContext | None):
        self.owner, self.context = owner, context
        super().__init__(address, handler)

    def finish_request(self, request, client_address) -> None:
        # The TLS handshake happens here, in the connection's own thread: a client that
        # connects and never speaks cannot block the accept loop.
        conn = request
        self.owner._track(conn, True)
        try:
            if self.context is not None:
                request.settimeout(30)
                try:
                    conn = self.context.wrap_socket(request, server_side=True)
                except (OSError, ssl.SSLError):
                    return
                finally:
                    self.owner._track(request, False)
                self.owner._track(conn, True)
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            self.owner._track(conn, False)
            if conn is not request:
                conn.close()

    def handle_error(self, request, client_address) -> None:
        pass  # clients that go away mid-response are what the fault tests are about


def _handler(owner: HttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "molstream-test-http"
        timeout = 60  # a stalled client does not hold a thread forever

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
            if not owner.head:
                owner.requests.append({"method": self.command, "path": self.path,
                                       **dict(self.headers)})
                return self._empty(405, Allow="GET")
            self._serve(body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._serve(body=True)

        def _empty(self, status: int, **headers: str) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k.replace("_", "-"), v)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _authorized(self) -> bool:
            if owner.user is None:
                return True
            token = base64.b64encode(f"{owner.user}:{owner.password}".encode()).decode()
            return hmac.compare_digest(self.headers.get("Authorization", ""), f"Basic {token}")

        def _serve(self, *, body: bool) -> None:
            owner.requests.append({"method": self.command, "path": self.path,
                                   **dict(self.headers)})
            if not self._authorized():
                return self._empty(401, WWW_Authenticate='Basic realm="molstream"')
            target = owner.redirects.get(urlsplit(self.path).path)
            if target is not None:
                return self._empty(302, Location=target)
            root = owner.root.resolve()
            path = (root / unquote(urlsplit(self.path).path).lstrip("/")).resolve()
            if root not in path.parents or not path.is_file():
                return self._empty(404)
            st = path.stat()
            size = st.st_size
            etag = f'"{st.st_mtime_ns:x}-{size:x}"'
            modified = email.utils.formatdate(st.st_mtime, usegmt=True)
            rng = parse_range(self.headers.get("Range"), size)
            if_range = self.headers.get("If-Range")
            valid = ([etag] if owner.etag else []) + ([modified] if owner.last_modified else [])
            if rng is not None and if_range and if_range not in valid:
                rng = None  # the file changed since the client's first part: send it whole
            if rng == "unsatisfiable":
                return self._empty(416, Content_Range=f"bytes */{size}")
            first, last = rng or (0, size - 1)
            length = max(0, last - first + 1)
            self.send_response(206 if rng else 200)
            if rng:
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            if owner.etag:
                self.send_header("ETag", etag)
            if owner.last_modified:
                self.send_header("Last-Modified", modified)
            self.end_headers()
            if body:
                self._send_body(path, first, length)

        def _send_body(self, path: Path, first: int, length: int) -> None:
            cut = owner._take_cut(length)
            limit = cut or length
            sent, t0 = 0, time.monotonic()
            step = min(CHUNK, max(1024, owner.throttle_bps // 10)) if owner.throttle_bps else CHUNK
            with open(path, "rb") as f:
                f.seek(first)
                while sent < limit:
                    chunk = f.read(min(step, limit - sent))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    if owner.throttle_bps:  # sleep until we are back under the rate
                        ahead = sent / owner.throttle_bps - (time.monotonic() - t0)
                        if ahead > 0:
                            time.sleep(ahead)
            if cut:
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)  # short body: the client sees it

    return Handler

