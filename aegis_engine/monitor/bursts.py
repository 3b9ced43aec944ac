"""Counting suspicious file operations over a sliding window (pure logic, no I/O): the
ransomware shield's trigger. See :mod:`.ransomware` for what counts and why."""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass

from .content_signs import is_known_extension

__all__ = ["BurstDetector", "Op", "unknown_extension_change"]


@dataclass(frozen=True, slots=True)
class Op:
    """One suspicious operation on one file."""

    t: float
    kind: str  # "encrypted" | "destroyed" | "canary" | "canary-deleted"
    path: str
    root: str
    size: int = 0


class BurstDetector:
    """Counts suspicious operations over a sliding window; pure logic, no I/O.

    An operation counts once per file and kind within the window: a file saved again and
    again is one file, ransomware touches many different files."""

    def __init__(self, window: float, min_encrypted: int, min_destroyed: int) -> None:
        self.window = window
        self.min_encrypted = min_encrypted
        self.min_destroyed = min_destroyed
        self.ops: deque[Op] = deque()
        self._seen: dict[tuple[str, str], int] = {}
        self._encrypted = 0
        self._destroyed = 0
        self._canary_deleted = 0

    def _expire(self, now: float) -> None:
        while self.ops and now - self.ops[0].t > self.window:
            op = self.ops.popleft()
            key = (op.kind, op.path)
            left = self._seen.get(key, 0) - 1
            if left > 0:
                self._seen[key] = left
            else:
                self._seen.pop(key, None)
                self._count(op, -1)

    def _count(self, op: Op, d: int) -> None:
        if op.kind == "encrypted":
            self._encrypted += d
        elif op.kind == "destroyed":
            self._destroyed += d
        elif op.kind == "canary-deleted":
            self._canary_deleted += d
            self._destroyed += d

    def add(self, op: Op) -> str | None:
        """Record ``op``; returns why a burst is now complete (``canary``/``burst``), or None."""
        self._expire(op.t)
        self.ops.append(op)
        key = (op.kind, op.path)
        seen = self._seen.get(key, 0)
        self._seen[key] = seen + 1
        if not seen:
            self._count(op, +1)
        if op.kind == "canary":
            return "canary"
        if self._canary_deleted and self._encrypted >= 1:
            return "canary"
        if self._encrypted >= self.min_encrypted and self._destroyed >= self.min_destroyed:
            return "burst"
        return None

    @property
    def active(self) -> bool:
        return bool(self.ops)

    def quiet(self, now: float) -> bool:
        self._expire(now)
        return not self.ops

    def reset(self) -> list[Op]:
        ops = list(self.ops)
        self.ops.clear()
        self._seen.clear()
        self._encrypted = self._destroyed = self._canary_deleted = 0
        return ops

    def counts(self) -> tuple[int, int]:
        """(encrypted writes, destroyed files) in the window."""
        return self._encrypted, self._destroyed


def unknown_extension_change(src: str, dest: str) -> bool:
    """Renamed to an extension that is not an ordinary one and not the one it had."""
    s_ext = os.path.splitext(src)[1].lower()
    d_ext = os.path.splitext(dest)[1].lower()
    if s_ext == d_ext:
        return False
    return not is_known_extension(dest)
