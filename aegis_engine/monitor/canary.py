"""Canary files: small decoy documents Aegis plants, hidden, in protected folders.

Nobody has a reason to change them; a program that rewrites or renames one is walking the
folder and rewriting what it finds. Each looks like an ordinary PDF, named so that it sorts
before ordinary names (a leading dot, which also hides it in file managers and ``ls``).

Canaries are listed in ``<state_dir>/canaries.json``; they are removed when the monitor stops
(only if unchanged: a changed canary is evidence) and stale ones are removed at start.
Folders inside a git working tree get none (``git status`` would show them).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import sys
from pathlib import Path

from ..atomic import atomic_write
from ..bounded_io import load_json_file
from ..own_files import DECOY_STEMS, decoy_bytes, decoy_name

__all__ = ["CanarySet"]

log = logging.getLogger(__name__)


def _in_git_worktree(folder: Path) -> bool:
    return any((p / ".git").exists() for p in (folder, *folder.parents))


def _hide(path: Path) -> None:
    if sys.platform == "win32":  # pragma: no cover - not run on the CI
        import ctypes

        ctypes.windll.kernel32.SetFileAttributesW(str(path), 0x2)  # type: ignore[attr-defined]


class CanarySet:
    """The canaries of one monitor. Thread-safe for reads (``is_canary``)."""

    def __init__(self, state_file: Path) -> None:
        self._state_file = state_file
        self._files: dict[str, str] = {}  # path -> sha256 of what we wrote
        self.skipped: dict[str, str] = {}  # folder -> why none was planted

    @property
    def paths(self) -> list[str]:
        return list(self._files)

    def is_canary(self, path: str) -> bool:
        return path in self._files

    def is_own_temp(self, path: str) -> bool:
        """The temp file of our own atomic write of a canary."""
        return os.path.basename(path).startswith("..~")

    def plant(self, folder: str) -> str | None:
        """Plant one canary in ``folder``; returns its path, or None (and why in skipped)."""
        root = Path(folder)
        if _in_git_worktree(root):
            self.skipped[folder] = "inside a git working tree"
            return None
        stem = secrets.choice(DECOY_STEMS)
        path = root / decoy_name(stem, secrets.token_hex(3))
        data = decoy_bytes(stem)
        try:
            atomic_write(path, data, mode=0o644)
            _hide(path)
        except OSError as exc:
            self.skipped[folder] = f"cannot write: {exc.strerror or exc}"
            return None
        self._files[str(path)] = hashlib.sha256(data).hexdigest()
        self._save()
        return str(path)

    def forget_below(self, folder: str) -> None:
        below = folder.rstrip(os.sep) + os.sep
        for p in [p for p in self._files if p.startswith(below)]:
            del self._files[p]
        self._save()

    def remove_all(self) -> list[str]:
        """Remove our canaries that are unchanged; returns those left in place (changed)."""
        kept = []
        for path, digest in list(self._files.items()):
            if _digest(path) == digest:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            elif os.path.exists(path):
                kept.append(path)
        self._files.clear()
        self._save()
        return kept

    def remove_stale(self) -> None:
        """Remove canaries a previous run left behind (it did not stop cleanly)."""
        try:
            old = load_json_file(self._state_file)
        except (OSError, ValueError):
            return
        if not isinstance(old, dict):
            return
        for path, digest in old.items():
            if isinstance(path, str) and path not in self._files and _digest(path) == digest:
                with contextlib.suppress(OSError):
                    os.unlink(path)

    def _save(self) -> None:
        try:
            atomic_write(self._state_file, json.dumps(self._files, indent=1).encode())
        except OSError as exc:  # the list is a convenience; the canaries still work
            log.warning("cannot record canaries in %s: %s", self._state_file, exc)


def _digest(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read(1 << 20)).hexdigest()
    except OSError:
        return None
