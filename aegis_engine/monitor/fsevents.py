"""File-system events as the monitor sees them, whatever produced them (inotify, watchdog)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["EventSink", "FsEvent", "FsKind", "ProblemSink"]


class FsKind(StrEnum):
    CREATED = "created"
    """A file or folder appeared (its content may still be being written)."""
    MODIFIED = "modified"
    """A file was written to (it may still be open)."""
    CLOSED = "closed"
    """A file opened for writing was closed: the writer is done with it."""
    DELETED = "deleted"
    MOVED = "moved"
    """Renamed inside the watched trees: ``path`` -> ``dest``."""
    MOVED_IN = "moved-in"
    """Arrived complete from outside the watched trees (``path`` is where it is now)."""
    MOVED_OUT = "moved-out"
    """Left the watched trees (``path`` is where it was)."""
    OVERFLOW = "overflow"
    """Events were lost (the kernel's queue overflowed); ``path`` is the affected root."""
    ROOT_GONE = "root-gone"
    """A watched root folder was deleted or moved away."""
    ROOT_BACK = "root-back"
    """A watched root folder exists again and is watched again."""


@dataclass(frozen=True, slots=True)
class FsEvent:
    kind: FsKind
    path: str
    root: str
    dest: str | None = None
    is_dir: bool = False
    polled: bool = False
    """Came from the polling fallback: late, coarse, not fit for the ransomware shield."""


EventSink = Callable[[Sequence[FsEvent]], None]
"""Receives batches of events, in the order they happened, on the source's thread."""

ProblemSink = Callable[[str, str, str | None], None]
"""``(code, message, path)``: something could not be watched."""
