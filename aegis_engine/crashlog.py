"""Local crash reports: what an unexpected error looked like, kept under the data folder.

Nothing here leaves the machine. A report holds the Aegis and Python versions, the command
name (not its arguments: they name the user's files) and the traceback. The newest
:data:`KEEP` reports are kept. Sending a report is a separate, consented step.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from .paths import AegisPaths

__all__ = [
    "CRASH_DIR_NAME",
    "KEEP",
    "CrashLogHandler",
    "crash_dir",
    "list_reports",
    "reporting",
    "write_report",
]

CRASH_DIR_NAME = "crash-reports"
Writer = Callable[[BaseException], "Path | None"]
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


class CrashLogHandler(logging.Handler):
    """A logged failure (``log.exception`` in a monitor thread) becomes one line for the user
    through ``say`` and a crash report with the traceback; other records are one line."""

    def __init__(
        self,
        say: Callable[[str], None],
        *,
        command: str,
        paths: AegisPaths | None = None,
        write: Writer | None = None,
    ) -> None:
        super().__init__(logging.WARNING)
        self._say = say
        self._command = command
        self._paths = paths
        self._write = write

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            exc = record.exc_info[1] if record.exc_info else None
            if exc is not None:
                message = f"{message}: {_one_line(exc, self._command, self._paths, self._write)}"
            self._say(message)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def _one_line(
    exc: BaseException, command: str | None, paths: AegisPaths | None, write: Writer | None
) -> str:
    try:
        written = (
            write(exc) if write is not None else write_report(exc, command=command, paths=paths)
        )
        where = f"details are in {written}" if written is not None else "no crash report written"
    except Exception as err:
        where = f"no crash report could be written ({err})"
    return f"unexpected {type(exc).__name__}: {exc}; {where}"


@contextlib.contextmanager
def reporting(
    say: Callable[[str], None],
    *,
    command: str,
    paths: AegisPaths | None = None,
    write: Writer | None = None,
) -> Iterator[None]:
    """While inside: failures logged under ``aegis_engine`` and exceptions that end a thread
    are said on one line and written to a crash report, never a traceback on the terminal.
    ``write`` writes the report (default :func:`write_report`; the monitor passes
    ``privacy.crash.handle_crash``, which also queues it when crash reports are allowed)."""
    logger = logging.getLogger("aegis_engine")
    handler = CrashLogHandler(say, command=command, paths=paths, write=write)
    previous_propagate = logger.propagate
    previous_hook = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or isinstance(args.exc_value, SystemExit):
            return
        name = args.thread.name if args.thread is not None else "a thread"
        say(f"{name} stopped: {_one_line(args.exc_value, command, paths, write)}")

    logger.addHandler(handler)
    logger.propagate = False
    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous_hook
        logger.removeHandler(handler)
        logger.propagate = previous_propagate
