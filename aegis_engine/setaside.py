"""Set a damaged database aside (``NAME.corrupt-<time>``) so that a new one can be built."""

from __future__ import annotations

import contextlib
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["move_aside"]

SIDE_FILES = ("", "-wal", "-shm", "-journal")


def move_aside(path: Path, moment: datetime | None = None) -> Path:
    """Rename ``path`` (and its SQLite ``-wal``/``-shm``/``-journal`` files) to
    ``path.corrupt-<time>[-n]``; return the new name. Works for a folder in the file's place.
    Raises ``OSError`` when the rename fails (read-only or missing folder)."""
    stamp = (moment or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while os.path.lexists(aside):
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    for suffix in SIDE_FILES:
        src = Path(f"{path}{suffix}")
        if os.path.lexists(src):
            dst = Path(f"{aside}{suffix}")
            try:
                os.replace(src, dst)
            except IsADirectoryError:  # pragma: no cover - replace() renames folders too
                shutil.move(str(src), str(dst))
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return aside
