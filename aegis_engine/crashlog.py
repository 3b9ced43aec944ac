"""Local crash reports: what an unexpected error looked like, kept under the data folder.

Nothing here leaves the machine. A report holds the Aegis and Python versions, the command
name (not its arguments: they name the user's files) and the traceback. The newest
:data:`KEEP` reports are kept. Sending a report is a separate, consented step.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path

from .paths import AegisPaths

__all__ = ["CRASH_DIR_NAME", "KEEP", "crash_dir", "list_reports", "write_report"]

CRASH_DIR_NAME = "crash-reports"
KEEP = 20


def crash_dir(paths: AegisPaths) -> Path:
    return paths.data_dir / CRASH_DIR_NAME


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("aegis")
    except Exception:  # pragma: no cover - not installed as a distribution
        return "unknown"


def format_report(exc: BaseException, command: str | None) -> str:
    lines = [
        "Aegis crash report",
        f"time: {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"aegis: {_version()}",
        f"python: {platform.python_version()} ({sys.platform})",
        f"command: {command or '-'}",
        "",
        *traceback.format_exception(type(exc), exc, exc.__traceback__),
    ]
    return "\n".join(line.rstrip("\n") for line in lines) + "\n"


def write_report(
    exc: BaseException, *, command: str | None = None, paths: AegisPaths | None = None
) -> Path:
    """Write one crash report for ``exc`` and return its path (0600, in a 0700 folder).

    Raises ``OSError`` when it cannot be written (the caller then says so on one line)."""
    folder = crash_dir(paths or AegisPaths.default())
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
    n = 0
    while True:  # names sort by time; never overwrite a report
        path = folder / f"crash-{stamp}-{os.getpid()}-{n}.txt"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            break
        except FileExistsError:
            n += 1
    with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
        fh.write(format_report(exc, command))
    for old in list_reports(paths)[:-KEEP]:
        with contextlib.suppress(OSError):
            old.unlink()
    return path


def list_reports(paths: AegisPaths | None = None) -> list[Path]:
    """Crash reports on this machine, oldest first."""
    folder = crash_dir(paths or AegisPaths.default())
    try:
        return sorted(p for p in folder.iterdir() if p.name.startswith("crash-"))
    except OSError:
        return []
