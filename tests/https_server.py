"""A real HTTPS server on 127.0.0.1 for network tests (http.server + ssl in a thread).

Routes map a path to a handler function ``(request_handler) -> None``; unknown paths are
served from ``root`` (a folder) when given, with ``Range`` support. The server counts TCP
connections accepted and requests handled, so a test can prove that nothing was sent.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import trustme

Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


@dataclass
class ServerStats:
    connections: int = 0
    requests: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    stats: ServerStats
    routes: dict[str, Handler]
    root: Path | None
    ssl_ctx: ssl.SSLContext

    def get_request(self) -> tuple[socket.socket, object]:
        sock, addr = self.socket.accept()
        self.stats.connections += 1
        sock.settimeout(30)
        try:
            tls = self.ssl_ctx.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError):
            sock.close()
            raise
        return tls, addr

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # refused handshakes and broken pipes are the tests' point


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _dispatch(self) -> None:
        stats = self.server.stats
        stats.requests.append(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        stats.bodies.append(self.rfile.read(length) if length else b"")
        if self.headers.get("Range"):
            stats.ranges.append(self.headers["Range"])
        route = self.server.routes.get(self.path.split("?")[0])
        if route is not None:
            route(self)
            return
        if self.server.root is not None:
            serve_file(self, self.server.root / self.path.lstrip("/").split("?")[0])
            return
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = _dispatch
    do_POST = _dispatch


def send_bytes(h: http.server.BaseHTTPRequestHandler, data: bytes, status: int = 200) -> None:
    h.send_response(status)
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


def serve_file(h: http.server.BaseHTTPRequestHandler, path: Path) -> None:
    try:
        if ".." in path.parts or not path.is_file():
            raise FileNotFoundError
        data = path.read_bytes()
    except OSError:
        send_bytes(h, b"", 404)
        return
    rng = h.headers.get("Range")
    if rng and rng.startswith("bytes=") and rng.endswith("-"):
        start = int(rng[6:-1])
        if start >= len(data):
            send_bytes(h, b"", 416)
            return
        h.send_response(206)
        h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.send_header("Content-Length", str(len(data) - start))
        h.end_headers()
        h.wfile.write(data[start:])
        return
    send_bytes(h, data)


class busy_once:
    """A handler that answers 429 with ``Retry-After: retry_after`` to the first request and
    hands every later one to ``then``; ``calls`` counts the requests."""

    def __init__(self, retry_after: str, then: Handler) -> None:
        self.retry_after = retry_after
        self.then = then
        self.calls = 0

    def __call__(self, h: http.server.BaseHTTPRequestHandler) -> None:
        self.calls += 1
        if self.calls > 1:
            self.then(h)
            return
        h.send_response(429)
        h.send_header("Retry-After", self.retry_after)
        h.send_header("Content-Length", "0")
        h.end_headers()


@dataclass
class HTTPSServer:
    url: str
    port: int
    stats: ServerStats
    routes: dict[str, Handler]
    ca: trustme.CA
    server_cert: trustme.LeafCert
    ca_file: Path


@contextlib.contextmanager
def https_server(
    tmp: Path,
    *,
    ca: trustme.CA | None = None,
    hostnames: tuple[str, ...] = ("127.0.0.1", "localhost"),
    root: Path | None = None,
    client_ca: trustme.CA | None = None,
    leaf: trustme.LeafCert | None = None,
) -> Iterator[HTTPSServer]:
    """Serve on 127.0.0.1 with a certificate for ``hostnames`` signed by ``ca``."""
    ca = ca or trustme.CA()
    cert = leaf or ca.issue_cert(*hostnames)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    if client_ca is not None:
        client_ca.configure_trust(ctx)
        ctx.verify_mode = ssl.CERT_REQUIRED
    server = _Server(("127.0.0.1", 0), _Handler)
    server.stats = ServerStats()
    server.routes = {}
    server.root = root
    server.ssl_ctx = ctx
    ca_file = tmp / f"ca-{id(ca)}.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield HTTPSServer(
            f"https://127.0.0.1:{port}", port, server.stats, server.routes, ca, cert, ca_file
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class drop_halfway_once:
    """A handler serving files under ``root`` that sends half of the file and drops the
    connection the first time the whole file is asked for; ``ranged`` counts the bytes it
    then sends to requests with a ``Range`` header (a resumed download)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dropped = False
        self.ranged = 0

    def __call__(self, h: http.server.BaseHTTPRequestHandler) -> None:
        path = self.root / h.path.lstrip("/")
        rng = h.headers.get("Range")
        if not rng and not self.dropped:
            self.dropped = True
            data = path.read_bytes()
            h.send_response(200)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data[: len(data) // 2])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            self.ranged += max(0, path.stat().st_size - int(rng[6:-1]))
        serve_file(h, path)
