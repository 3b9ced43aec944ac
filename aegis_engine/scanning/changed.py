"""Files changed since a moment: what real-time protection missed while it was paused.

A file counts as changed when its mtime or its ctime (set by writes, renames, chmod, and by
a copy that keeps an old mtime) is at or after ``since``. The walk is :func:`walk.walk`'s
(no symlinks followed, special files and Aegis's decoys left out).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .walk import FileEntry, walk


@dataclass
class ChangedFiles:
    paths: list[str] = field(default_factory=list)
    truncated: bool = False
    """More than ``limit`` files changed: scan the folders instead."""


def files_changed_since(
    roots: Iterable[str],
    since: float,
    *,
    stop: Callable[[], bool] = lambda: False,
    limit: int = 50_000,
) -> ChangedFiles:
    """Regular files under ``roots`` written (or moved in) at or after ``since`` (epoch s)."""
    found = ChangedFiles()
    for seen, item in enumerate(walk(roots), 1):
        if seen % 256 == 0 and stop():
            break
        if not isinstance(item, FileEntry):
            continue
        if max(item.st.st_mtime, item.st.st_ctime) >= since:
            if len(found.paths) >= limit:
                found.truncated = True
                break
            found.paths.append(item.path)
    return found


__all__ = ["ChangedFiles", "files_changed_since"]
