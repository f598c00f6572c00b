"""An HTTP(S) file server with Range support, optional basic auth, and a one-time cut of the
connection mid-body (for resume tests). Runs in a thread of the test process."""

from __future__ import annotations

import base64
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ._process import free_port
from .certs import self_signed


class HttpServer:
    def __init__(self, root: Path, *, user: str | None = None, password: str | None = None,
                 tls: bool = False, cut_after_bytes: int = 0, port: int | None = None) -> None:
        self.root, self.user, self.password, self.tls = Path(root), user, password, tls
        self.port = port or free_port()
        self.cut_after_bytes = cut_after_bytes
        self.cuts = 0
        self.requests: list[dict[str, str]] = []
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def start(self) -> HttpServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                owner.requests.append(dict(self.headers))
                if owner.user is not None:
                    token = base64.b64encode(f"{owner.user}:{owner.password}".encode()).decode()
                    if self.headers.get("Authorization") != f"Basic {token}":
                        self.send_response(401)
                        self.send_header("WWW-Authenticate", 'Basic realm="molstream"')
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                path = (owner.root / self.path.lstrip("/")).resolve()
                if owner.root.resolve() not in path.parents or not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start = 0
                if rng := self.headers.get("Range"):
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if owner.cut_after_bytes and not owner.cuts and len(body) > owner.cut_after_bytes:
                    owner.cuts += 1
                    self.wfile.write(body[:owner.cut_after_bytes])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.close()
                    return
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        if self.tls:
            cert, key = self_signed()
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
