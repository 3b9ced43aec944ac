"""Is another tray app of this profile running? Answered from its lock file alone, without Qt,
so that a second start (the file managers' "Scan with Aegis", the menu entry) can hand over
its request before it loads the engine and Qt's widgets."""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows: the full start-up path decides
    _fcntl = None  # type: ignore[assignment]


def lock_file(lock_dir: Path) -> Path:
    """The lock the running tray app of a profile holds (in its state folder)."""
    return lock_dir / "tray.lock"


def held_by_another(lock_path: Path) -> bool:
    """True when another process holds ``lock_path`` (the running instance). False when it
    is free, missing or cannot be checked: the caller then starts normally, and
    ``SingleInstance.claim`` decides for good."""
    if _fcntl is None or not lock_path.exists():
        return False
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except OSError:
        return False
    try:
        _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases a lock this probe took
    return False
