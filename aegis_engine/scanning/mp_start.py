"""How Aegis starts a process of its own: ``forkserver`` (else ``spawn``), never a plain fork
of the caller (which may be a Qt process), and never re-running the caller's ``__main__``.

:func:`untracked_spawn_context` is ``spawn`` without multiprocessing's *resource tracker*:
CPython's ``spawn`` start (``popen_spawn_posix.Popen._launch``) and the fork server both
start that helper process (~8 MB PSS, for as long as the caller lives) to unlink named
semaphores and shared memory a crashed child leaves behind. Aegis's processes use neither
(pipes and file descriptors only), so the preload server is started without it."""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any


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


def untracked_spawn_context() -> multiprocessing.context.BaseContext:
    """``spawn`` that starts no resource tracker (see the module's doc); plain ``spawn``
    where there is none to avoid (not POSIX)."""
    if sys.platform == "win32":
        return multiprocessing.get_context("spawn")
    return _UntrackedSpawnContext()


def _untracked_popen(process_obj: Any) -> Any:
    from multiprocessing import popen_spawn_posix, reduction, spawn, util
    from multiprocessing.context import set_spawning_popen

    class UntrackedPopen(popen_spawn_posix.Popen):
        """``spawn`` as CPython does it, minus ``resource_tracker.getfd()``: the child gets
        no tracker fd (``spawn_main(tracker_fd=None)``, also in a PyInstaller build) and
        would start its own tracker only if it ever made a named semaphore."""

        def _launch(self, process_obj: Any) -> None:
            prep_data = spawn.get_preparation_data(process_obj._name)
            data = io.BytesIO()
            set_spawning_popen(self)
            try:
                reduction.dump(prep_data, data)
                reduction.dump(process_obj, data)
            finally:
                set_spawning_popen(None)
            parent_r, child_w = os.pipe()  # the child holds child_w: EOF = it has ended
            child_r, parent_w = os.pipe()  # the child reads its start-up data here
            try:
                cmd = spawn.get_command_line(pipe_handle=child_r)
                fds: list[int] = self._fds  # type: ignore[attr-defined]
                fds.extend([child_r, child_w])
                exe: Any = spawn.get_executable()
                self.pid = util.spawnv_passfds(exe, cmd, fds)
                self.sentinel = parent_r
                with open(parent_w, "wb", closefd=False) as pipe:
                    pipe.write(data.getbuffer())
            finally:
                close_fds: Any = util.close_fds  # type: ignore[attr-defined]
                self.finalizer = util.Finalize(self, close_fds, [parent_r, parent_w])
                os.close(child_r)
                os.close(child_w)

    return UntrackedPopen(process_obj)


class _UntrackedSpawnProcess(multiprocessing.context.SpawnProcess):
    _start_method = "spawn"

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _untracked_popen(process_obj)


class _UntrackedSpawnContext(multiprocessing.context.SpawnContext):
    _name = "spawn"
    Process = _UntrackedSpawnProcess
