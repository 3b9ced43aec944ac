"""One tray app per profile: a lock file decides who runs; a local socket lets a second
start ask the running one to show itself."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

try:
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows: the server name alone decides
    _fcntl = None  # type: ignore[assignment]

SHOW = b"show\n"


def server_name(config_dir: Path) -> str:
    digest = hashlib.sha256(str(config_dir.resolve()).encode()).hexdigest()[:16]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return f"aegis-tray-{uid}-{digest}"


class SingleInstance(QObject):
    """``claim()`` returns True in the first instance (which then receives
    ``show_requested``), False in any other (after asking the first to show itself)."""

    show_requested = Signal()

    def __init__(self, config_dir: Path, lock_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = server_name(config_dir)
        self._lock_path = lock_dir / "tray.lock"
        self._lock_fd: int | None = None
        self._server: QLocalServer | None = None

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

    def claim(self, wait_ms: int = 3000) -> bool:
        if not self._lock():
            self._ask_to_show(wait_ms)
            return False
        QLocalServer.removeServer(self.name)  # a stale socket from a crashed run
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.name):
            raise OSError(f"cannot listen on {self.name}: {server.errorString()}")
        server.newConnection.connect(self._accept)
        self._server = server
        return True

    def _ask_to_show(self, wait_ms: int) -> bool:
        """Tell the running instance to show itself; it may still be starting, so retry."""
        import time

        deadline = time.monotonic() + wait_ms / 1000
        while True:
            sock = QLocalSocket()
            sock.connectToServer(self.name)
            if sock.waitForConnected(300):
                sock.write(SHOW)
                sock.flush()
                sock.waitForBytesWritten(1000)
                sock.disconnectFromServer()
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def _accept(self) -> None:
        assert self._server is not None
        while self._server.hasPendingConnections():
            sock = self._server.nextPendingConnection()
            sock.readyRead.connect(lambda s=sock: self._read(s))
            sock.disconnected.connect(sock.deleteLater)
            if sock.bytesAvailable():
                self._read(sock)

    def _read(self, sock: QLocalSocket) -> None:
        data = bytes(sock.readAll().data())
        if data.startswith(SHOW.strip()):
            self.show_requested.emit()

    def release(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None
