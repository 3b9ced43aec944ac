"""Crash reports (purpose ``crash-reports``): the excepthook of the CLI, the monitor and the
tray app.

A crash is always written locally first (``state_dir/crashes/crash-<time>.txt``, the full
traceback, readable by the user only, the newest :data:`KEEP_LOCAL` kept). Only when the user
allowed crash reports is a report queued in the outbox, built from the crash-report
allowlist (version, OS family, Python version, component, error type, the stack of Aegis
functions) and passed through the redactor: no message, no path, no local variable. Nothing
is sent from here; the outbox is sent later through the network layer.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import threading
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from ..paths import AegisPaths
from .allowlist import build_record
from .redact import Redactor

__all__ = ["KEEP_LOCAL", "crash_record", "handle_crash", "install_excepthook", "write_local"]

KEEP_LOCAL = 20
PURPOSE = "crash-reports"


def _os_family() -> str:
    return platform.system() or sys.platform


def crash_record(exc: BaseException, component: str, redactor: Redactor) -> dict[str, Any]:
    """The report that may be queued for ``exc`` (allowlisted and redacted)."""
    from .consent import _aegis_version

    raw = {
        "aegis_version": _aegis_version(),
        "os": _os_family(),
        "python": platform.python_version(),
        "component": component,
        "error_type": redactor.error_type(exc),
        "traceback": redactor.traceback(exc),
    }
    return build_record(PURPOSE, raw, redactor)


def write_local(paths: AegisPaths, exc: BaseException, component: str) -> Path:
    """Write the full crash locally (never sent as is); returns its path."""
    folder = paths.ensure(paths.state_dir / "crashes")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    path = folder / f"crash-{stamp}-{component}.txt"
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as fh:
        fh.write(f"Aegis {component} crashed at {stamp}\n{text}")
    old = sorted(folder.glob("crash-*.txt"))[:-KEEP_LOCAL]
    for p in old:
        with contextlib.suppress(OSError):
            p.unlink()
    return path


def handle_crash(
    paths: AegisPaths,
    exc: BaseException,
    component: str,
    *,
    redactor: Redactor | None = None,
) -> Path | None:
    """Write the crash locally, and queue a report when crash reports are allowed. Never
    raises: a failure here must not hide the crash itself."""
    from .consent import ConsentStore
    from .outbox import Outbox

    local: Path | None = None
    try:
        local = write_local(paths, exc, component)
    except Exception:
        local = None
    try:
        if ConsentStore.for_paths(paths).is_granted(PURPOSE):
            record = crash_record(exc, component, redactor or Redactor.for_this_machine())
            Outbox.for_paths(paths).add(PURPOSE, record)
    except Exception:
        pass
    return local


Hook = Callable[[type[BaseException], BaseException, TracebackType | None], Any]


def install_excepthook(
    component: str,
    paths: AegisPaths | None = None,
    *,
    on_written: Callable[[Path], None] | None = None,
) -> None:
    """Make uncaught exceptions (main thread and other threads) go through
    :func:`handle_crash`, then to the previous hook (which prints them)."""
    previous: Hook = sys.excepthook
    previous_thread = threading.excepthook

    def where() -> AegisPaths:
        return paths or AegisPaths.default()

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if not issubclass(exc_type, KeyboardInterrupt | SystemExit):
            if exc.__traceback__ is None and tb is not None:
                exc = exc.with_traceback(tb)
            written = handle_crash(where(), exc, component)
            if written is not None and on_written is not None:
                on_written(written)
        previous(exc_type, exc, tb)

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None and not isinstance(args.exc_value, SystemExit):
            handle_crash(where(), args.exc_value, component)
        previous_thread(args)

    sys.excepthook = hook
    threading.excepthook = thread_hook
