"""What the monitor looks at: normalized folders, the outermost roots, and the paths it
never looks at (Aegis's own folders, its scan temp folders, exclusions)."""

from __future__ import annotations

import fnmatch
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["Skipper", "normalize", "outermost"]


def normalize(paths: Iterable[str | Path]) -> list[str]:
    """Real, absolute paths without repeats, in order."""
    out: list[str] = []
    for p in paths:
        real = os.path.realpath(os.path.expanduser(os.fspath(p)))
        if real not in out:
            out.append(real)
    return out


def outermost(paths: Sequence[str]) -> list[str]:
    """Drop paths that lie inside another one (one inotify watch per folder)."""
    out: list[str] = []
    for p in sorted(paths, key=len):
        if not any(p == q or p.startswith(q.rstrip(os.sep) + os.sep) for q in out):
            out.append(p)
    return out


class Skipper:
    """Paths the monitor never looks at: Aegis's own folders, its scan temp folders,
    exclusions, and canaries (for on-access scanning)."""

    def __init__(self, own: Sequence[str], globs: Sequence[str]) -> None:
        self._own = tuple(p.rstrip(os.sep) for p in own)
        self._own_below = tuple(p + os.sep for p in self._own)
        self._tmp = os.path.realpath(tempfile.gettempdir()).rstrip(os.sep) + os.sep
        self._globs = tuple(globs)

    def __call__(self, path: str) -> bool:
        if path in self._own or path.startswith(self._own_below):
            return True
        if path.startswith(self._tmp) and path[len(self._tmp) :].startswith("aegis-scan-"):
            return True
        if self._globs:
            name = os.path.basename(path)
            return any(fnmatch.fnmatch(path, g) or fnmatch.fnmatch(name, g) for g in self._globs)
        return False
