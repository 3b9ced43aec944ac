"""Follow the engine's state on disk (history database, quarantine vault) while a window shows
it, so the window updates when another process (the CLI, the monitor service, a scheduled scan)
changes it. Cheap: one ``stat`` per path every couple of seconds, only while active."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

Signature = tuple[tuple[int, int, int], ...]


def signature(paths: Sequence[Path]) -> Signature:
    """(mtime_ns, size, inode) of each path; zeros for a missing one."""
    out: list[tuple[int, int, int]] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append((0, 0, 0))
        else:
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


class ChangeWatch(QObject):
    """Emits ``changed()`` when any of ``paths`` changes, checked every ``interval_ms``
    from ``start()`` until ``stop()`` or until ``alive()`` says False (the window closed)."""

    changed = Signal()

    def __init__(
        self,
        paths: Sequence[Path],
        alive: Callable[[], bool],
        interval_ms: int = 2000,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._paths = tuple(paths)
        self._alive = alive
        self._last: Signature = ()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.check)

    @property
    def active(self) -> bool:
        return self._timer.isActive()

    def start(self) -> None:
        """Remember the current state (the caller has just loaded it) and follow it."""
        self._last = signature(self._paths)
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def check(self) -> None:
        if not self._alive():
            self.stop()
            return
        now = signature(self._paths)
        if now != self._last:
            self._last = now
            self.changed.emit()
