"""One tray app per profile: a lock file decides who runs; a local socket lets a second
start ask the running one to show itself, or to scan paths (``aegis-tray --scan PATH...``,
what the file managers' "Scan with Aegis" runs).

The socket carries one request per connection, a line: ``show`` or ``scan`` followed by a
JSON list of absolute paths."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from .instance_lock import lock_file

try:
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows: the server name alone decides
    _fcntl = None  # type: ignore[assignment]

SHOW = b"show\n"
SCAN = b"scan "
MAX_REQUEST = 4 << 20
"""Longest request line accepted (bytes): thousands of selected files, not unbounded."""


def scan_request(paths: Sequence[str]) -> bytes:
    return SCAN + json.dumps([os.path.abspath(p) for p in paths]).encode("utf-8") + b"\n"


def parse_request(line: bytes) -> tuple[str, list[str]]:
    """``("show", [])``, ``("scan", paths)``, or ``("", [])`` for anything else."""
    if line.strip() == SHOW.strip():
        return "show", []
    if line.startswith(SCAN):
        try:
            paths = json.loads(line[len(SCAN) :].decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return "", []
        if isinstance(paths, list) and all(isinstance(p, str) for p in paths) and paths:
            return "scan", paths
    return "", []


def server_name(config_dir: Path) -> str:
    digest = hashlib.sha256(str(config_dir.resolve()).encode()).hexdigest()[:16]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return f"aegis-tray-{uid}-{digest}"


def send_request(name: str, request: bytes, wait_ms: int = 3000) -> bool:
    """Hand ``request`` to the running instance listening on ``name``; it may still be
    starting, so retry until ``wait_ms``. Needs no QApplication."""
    import time

    deadline = time.monotonic() + wait_ms / 1000
    while True:
        sock = QLocalSocket()
        sock.connectToServer(name)
        if sock.waitForConnected(300):
            sock.write(request)
            sock.flush()
            while sock.bytesToWrite() > 0 and sock.waitForBytesWritten(1000):
                pass
            sock.disconnectFromServer()
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


class SingleInstance(QObject):
    """``claim()`` returns True in the first instance (which then receives
    ``show_requested`` or ``scan_requested(paths)``), False in any other (after handing its
    request to the first: ``scan_paths`` if given, else "show yourself")."""

    show_requested = Signal()
    scan_requested = Signal(list)

    def __init__(self, config_dir: Path, lock_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = server_name(config_dir)
        self._lock_path = lock_file(lock_dir)
        self._lock_fd: int | None = None
        self._server: QLocalServer | None = None
        self._buffers: dict[QLocalSocket, bytearray] = {}
        self.delivered = False
        """In a second instance: whether the running one received the request."""

    def _lock(self) -> bool:
        if _fcntl is None:  # pragma: no cover
            return True
        self._lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def claim(self, wait_ms: int = 3000, scan_paths: Sequence[str] = ()) -> bool:
        if not self._lock():
            request = scan_request(scan_paths) if scan_paths else SHOW
            self.delivered = self._send(request, wait_ms)
            return False
        QLocalServer.removeServer(self.name)  # a stale socket from a crashed run
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.name):
            raise OSError(f"cannot listen on {self.name}: {server.errorString()}")
        server.newConnection.connect(self._accept)
        self._server = server
        return True

    def _send(self, request: bytes, wait_ms: int) -> bool:
        return send_request(self.name, request, wait_ms)

    def _accept(self) -> None:
        assert self._server is not None
        while self._server.hasPendingConnections():
            sock = self._server.nextPendingConnection()
            self._buffers[sock] = bytearray()
            sock.readyRead.connect(lambda s=sock: self._read(s))
            sock.disconnected.connect(lambda s=sock: self._closed(s))
            if sock.bytesAvailable():
                self._read(sock)

    def _read(self, sock: QLocalSocket) -> None:
        buf = self._buffers.get(sock)
        if buf is None:
            return
        buf += bytes(sock.readAll().data())
        if b"\n" in buf:
            line = bytes(buf[: buf.index(b"\n")])
            del self._buffers[sock]
            sock.disconnectFromServer()
            self._dispatch(line)
        elif len(buf) > MAX_REQUEST:
            del self._buffers[sock]
            sock.abort()

    def _closed(self, sock: QLocalSocket) -> None:
        buf = self._buffers.pop(sock, None)
        if buf:  # an old client that wrote "show" without waiting for more
            self._dispatch(bytes(buf))
        sock.deleteLater()

    def _dispatch(self, line: bytes) -> None:
        kind, paths = parse_request(line)
        if kind == "show":
            self.show_requested.emit()
        elif kind == "scan":
            self.scan_requested.emit(paths)

    def release(self) -> None:
        for sock in list(self._buffers):  # clients still connected: closed now, not later
            sock.abort()
        self._buffers.clear()
        if self._server is not None:
            self._server.close()
            self._server.deleteLater()  # with its sockets, from the event loop
            self._server = None
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None
