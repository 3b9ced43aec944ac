"""Crash reports (purpose ``crash-reports``): the excepthook of the CLI, the monitor and the
tray app.

A crash is always written locally first (:mod:`aegis_engine.crashlog`: the full traceback,
readable by the user only, never sent as it is). Only when the user
allowed crash reports is a report queued in the outbox, built from the crash-report
allowlist (version, OS family, Python version, component, error type, the stack of Aegis
functions) and passed through the redactor: no message, no path, no local variable. Nothing
is sent from here; the outbox is sent later through the network layer.
"""

from __future__ import annotations

import platform
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from ..paths import AegisPaths
from .allowlist import build_record
from .redact import Redactor

__all__ = ["crash_record", "handle_crash", "install_excepthook", "queue_report"]

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


def queue_report(
    paths: AegisPaths, exc: BaseException, component: str, *, redactor: Redactor | None = None
) -> bool:
    """Queue a report of ``exc`` in the outbox when crash reports are allowed; True if queued.
    Never raises: a failure here must not hide the crash itself."""
    from .consent import ConsentStore
    from .outbox import Outbox

    try:
        if not ConsentStore.for_paths(paths).is_granted(PURPOSE):
            return False
        record = crash_record(exc, component, redactor or Redactor.for_this_machine())
        Outbox.for_paths(paths).add(PURPOSE, record)
    except Exception:
        return False
    return True


def handle_crash(
    paths: AegisPaths,
    exc: BaseException,
    component: str,
    *,
    redactor: Redactor | None = None,
) -> Path | None:
    """Write the crash locally (:mod:`aegis_engine.crashlog`), and queue a report when crash
    reports are allowed. Returns the local report, None if it could not be written. Never
    raises."""
    from .. import crashlog

    local: Path | None = None
    try:
        local = crashlog.write_report(exc, command=component, paths=paths)
    except Exception:  # a full disk must not mask the original error
        local = None
    queue_report(paths, exc, component, redactor=redactor)
    return local


Hook = Callable[[type[BaseException], BaseException, TracebackType | None], Any]


def install_excepthook(
    component: str,
    paths: AegisPaths | None = None,
    *,
    on_written: Callable[[Path], None] | None = None,
) -> None:
    """Make uncaught exceptions (main thread and other threads) go through
    :func:`handle_crash`, then to the previous hook (which prints them). Installing again
    (``main()`` called twice in one process, the monitor after the CLI) replaces Aegis's own
    hook instead of chaining a second one."""
    previous: Hook = getattr(sys.excepthook, "_aegis_previous", sys.excepthook)
    previous_thread = getattr(threading.excepthook, "_aegis_previous", threading.excepthook)

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

    hook._aegis_previous = previous  # type: ignore[attr-defined]
    thread_hook._aegis_previous = previous_thread  # type: ignore[attr-defined]
    sys.excepthook = hook
    threading.excepthook = thread_hook
