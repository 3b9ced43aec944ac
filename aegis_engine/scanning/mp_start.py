"""How Aegis starts a process of its own: ``forkserver`` (else ``spawn``), never a plain fork
of the caller (which may be a Qt process), and never re-running the caller's ``__main__``."""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import threading
from collections.abc import Iterator


def mp_context() -> multiprocessing.context.BaseContext:
    """``forkserver`` where the platform has it, else ``spawn``; never a plain fork."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # Imported once in the fork server, shared by every process forked from it.
        ctx.set_forkserver_preload(["aegis_engine.scanning.worker_main"])
        return ctx
    return multiprocessing.get_context("spawn")


_MAIN_LOCK = threading.Lock()
_MISSING = object()


@contextlib.contextmanager
def main_module_hidden() -> Iterator[None]:
    """Start processes without re-importing the caller's ``__main__`` in them.

    multiprocessing re-runs the main script (or module) in every spawned or forkserver
    child. A worker needs none of it: for the tray app it would import Qt, and a main that
    is not a file (``python -`` from a pipe, an embedding host) makes every start fail."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    with _MAIN_LOCK:
        saved = {name: getattr(main, name, _MISSING) for name in ("__spec__", "__file__")}
        main.__spec__ = None
        if saved["__file__"] is not _MISSING:
            del main.__file__
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is not _MISSING:
                    setattr(main, name, value)
