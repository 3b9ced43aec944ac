"""The worker processes themselves: how they start, and the pool that keeps them.

``workers.py`` drives them during a scan (batches, deadlines, crashes); this module only
starts, hands out, takes back and stops processes. See ``worker_main.py`` for what runs
inside one.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..config import ScanLimits, ScanOptions
from ..content import ContentSources
from ..errors import ScanError
from ..paths import AegisPaths
from . import zygote
from .mp_start import main_module_hidden, mp_context

if TYPE_CHECKING:
    from .walk import FileEntry

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "LARGE_FILE_BYTES",
    "WorkerConfig",
    "WorkerPool",
    "WorkerProcess",
    "is_large",
    "mp_context",
    "split_large",
]

MiB = 1024 * 1024
DEFAULT_MEMORY_LIMIT = 3072 * MiB
"""Address space of one worker (``RLIMIT_AS``). A worker with every detector loaded (the ML
model included) maps about 360 MB; the rest is headroom for one file's work (a 100 MB file,
400 MB extracted from it, the decompressors' own buffers)."""

LARGE_FILE_BYTES = 16 * MiB
"""A file at least this big is *large*: a worker holds the whole of it while it scans it (up
to ``max_file_size``, 100 MB), so a scan hands a large file to a worker only while no other
large file is in any of its workers (``PoolScan``): two of them are never held at once, and
small files keep flowing to the other workers meanwhile."""


def is_large(entry: FileEntry) -> bool:
    return entry.st.st_size >= LARGE_FILE_BYTES


def split_large(entries: Sequence[FileEntry]) -> list[list[FileEntry]]:
    """``entries`` as batches in the same order, each large file a batch of its own."""
    batches: list[list[FileEntry]] = []
    small: list[FileEntry] = []
    for entry in entries:
        if not is_large(entry):
            small.append(entry)
            continue
        if small:
            batches.append(small)
            small = []
        batches.append([entry])
    if small:
        batches.append(small)
    return batches


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs to build its detectors (sent once, when it starts)."""

    paths: AegisPaths
    content: ContentSources
    limits: ScanLimits
    plugins: bool = True
    extra_factories: tuple[str, ...] = ()
    memory_limit: int = DEFAULT_MEMORY_LIMIT
    """Bytes of address space per worker; 0 for no cap."""
    idle_timeout: float = 300.0
    """A worker with nothing to do for this long exits (the pool starts another when needed);
    so does the preload server once its last worker has been gone this long. A worker
    started for on-access scanning gets the shorter ``[realtime] worker_idle`` instead
    (``WorkerPool.acquire(idle_timeout=)``)."""
    start_timeout: float = 600.0
    """Seconds a worker may take to load its detectors (rules compiled on first use)."""
    share_content: bool = True
    """Fork workers from a preload server that loaded the content once (``zygote.py``), so
    they share it; False (or no pidfds here): each worker loads its own, as before."""


class WorkerProcess:
    """The parent's handle on one worker process."""

    def __init__(
        self,
        ctx: multiprocessing.context.BaseContext,
        config: WorkerConfig,
        server: zygote.PreloadServer | None = None,
        *,
        model: bool = True,
        idle_timeout: float | None = None,
    ) -> None:
        self.idle_timeout = config.idle_timeout if idle_timeout is None else idle_timeout
        """Seconds it stays with nothing to do before it exits (its own clock)."""
        self.tmpdir = tempfile.mkdtemp(prefix="aegis-scan-worker-")
        self.ready = False
        self.since = time.monotonic()
        self.options: ScanOptions | None = None
        self.server = server
        """The preload server it was forked from (None: it loads its own content)."""
        self.shares_model = server is not None and model
        """Forked after the server made the ML model's session: it uses that one, shared."""
        self.process: Any
        if server is not None:
            try:
                self.conn, self.process = server.fork(self.tmpdir, model, self.idle_timeout)
            except BaseException:
                shutil.rmtree(self.tmpdir, ignore_errors=True)
                raise
            return
        from .worker_main import worker_main

        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(  # type: ignore[attr-defined]
            target=worker_main,
            args=(child, replace(config, idle_timeout=self.idle_timeout), self.tmpdir),
            name="aegis-scan-worker",
            daemon=True,
        )
        try:
            with main_module_hidden():
                self.process.start()
        except BaseException:
            self.conn.close()
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            raise
        finally:
            child.close()

    @property
    def alive(self) -> bool:
        return bool(self.process.is_alive())

    def send(self, message: object) -> None:
        self.conn.send(message)

    def kill(self) -> int | None:
        """Kill now and reap; returns the exit code."""
        with contextlib.suppress(OSError, ValueError):
            self.process.kill()
        return self.reap()

    def stop(self, timeout: float) -> None:
        """Ask to exit, wait up to ``timeout`` s, then kill."""
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(("stop",))
        self.process.join(timeout)
        self.kill()

    def reap(self) -> int | None:
        self.process.join(10)
        code: int | None = self.process.exitcode
        with contextlib.suppress(OSError):
            self.conn.close()
        with contextlib.suppress(ValueError, AttributeError):
            self.process.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        return code


class WorkerPool:
    """Worker processes shared by every scan of one engine (``Engine.scan``, ``scan_file``).

    Thread-safe: a caller takes workers with :meth:`acquire` and gives them back with
    :meth:`release` (or :meth:`discard` once killed). Idle workers stay warm until
    ``idle_timeout``; :meth:`shutdown` stops them all (join with a timeout, then kill).
    """

    def __init__(self, config: WorkerConfig, size: int) -> None:
        self.config = config
        self.size = max(1, size)
        self._ctx = mp_context()
        self._cond = threading.Condition()
        self._idle: list[WorkerProcess] = []
        self._busy: set[WorkerProcess] = set()
        self._starting = 0
        self._waiters = 0
        self._closed = False
        self._retired = False
        self._server_lock = threading.Lock()
        self._server: zygote.PreloadServer | None = None
        self._old_servers: list[zygote.PreloadServer] = []
        """Servers replaced (dead) or retired whose workers may still be running."""
        self.model_wanted = False
        """Set once a worker of this pool needed the ML model (it met a PE file): from then
        on the preload server makes the model's session once and the workers it forks share
        it. Until then no process pays for onnxruntime (30-40 MB) that may never be used."""

    @property
    def server(self) -> zygote.PreloadServer | None:
        """The preload server new workers are forked from (None until the first start, or
        when workers load their own content)."""
        return self._server

    def _start_worker(self, idle: float | None) -> WorkerProcess:
        model = self.model_wanted
        if not (self.config.share_content and zygote.supported()):
            return WorkerProcess(self._ctx, self.config, idle_timeout=idle)
        try:
            server = self._live_server()
            try:
                return WorkerProcess(
                    self._ctx, self.config, server, model=model, idle_timeout=idle
                )
            except ScanError:
                if server.alive:
                    raise
            # It had just left (idle timeout, killed): once more with a new one.
            return WorkerProcess(
                self._ctx, self.config, self._live_server(), model=model, idle_timeout=idle
            )
        finally:
            self._sweep()

    def _live_server(self) -> zygote.PreloadServer:
        """The running preload server; a new one when there is none or it is gone."""
        with self._server_lock:
            server = self._server
            if server is None or not server.alive:
                if server is not None:  # gone: its workers may still be finishing files
                    with self._cond:
                        self._old_servers.append(server)
                    self._server = None
                server = self._server = zygote.PreloadServer(zygote.server_context(), self.config)
            return server

    def _sweep(self) -> None:
        """Close the servers no worker needs any more: replaced ones whose workers are all
        gone, and the current one once the pool is retired or shut down and idle."""
        with self._cond:
            used = {w.server for w in (*self._idle, *self._busy)}
            done = [s for s in self._old_servers if s not in used]
            self._old_servers = [s for s in self._old_servers if s in used]
            current = self._server
            if (
                current is not None
                and current not in used
                and (self._closed or (self._retired and not self._starting))
            ):
                done.append(current)
                self._server = None
        for server in done:
            server.close()

    @property
    def processes(self) -> list[WorkerProcess]:
        with self._cond:
            return [*self._idle, *self._busy]

    def acquire(
        self, *, limit: int, block: bool, idle_timeout: float | None = None
    ) -> WorkerProcess | None:
        """An idle worker, or a new one while fewer than ``limit`` exist; else wait (``block``)
        or None. A non-blocking call yields to callers that are waiting. A new worker exits
        after ``idle_timeout`` s with nothing to do (None: ``config.idle_timeout``)."""
        with self._cond:
            while True:
                if self._closed:
                    raise ScanError("the scan worker pool is shut down")
                if not block and self._waiters:
                    return None
                while self._idle:
                    worker = self._idle.pop()
                    # Never hand out a worker that may be about to leave on its idle timeout.
                    fresh = time.monotonic() - worker.since < worker.idle_timeout / 2
                    if worker.alive and fresh and not self.stale(worker):
                        self._busy.add(worker)
                        return worker
                    worker.stop(1)
                if len(self._busy) + self._starting < max(1, limit):
                    self._starting += 1
                    break
                if not block:
                    return None
                self._waiters += 1
                try:
                    self._cond.wait()
                finally:
                    self._waiters -= 1
        try:
            worker = self._start_worker(idle_timeout)
        except BaseException:
            with self._cond:
                self._starting -= 1
                self._cond.notify_all()
            raise
        with self._cond:
            self._starting -= 1
            closed = self._closed
            if not closed:
                self._busy.add(worker)
        if closed:
            worker.kill()
            self._sweep()
            raise ScanError("the scan worker pool is shut down")
        return worker

    def stale(self, worker: WorkerProcess) -> bool:
        """Whether a worker should be replaced once its batches are done: the pool's
        workers now share one ML model session made in the server (``model_wanted``), and
        this one was forked before that; it would otherwise make, or has made, its own copy
        (onnxruntime and the session: ~60 MiB). ``PoolScan`` sends it no more batches."""
        return self.model_wanted and worker.server is not None and not worker.shares_model

    def want_model(self) -> None:
        """A worker needed the ML model: from now on new workers share one session made in
        the server, and idle workers forked before (see :meth:`stale`) stop now."""
        with self._cond:
            self.model_wanted = True
            stale = [w for w in self._idle if self.stale(w)]
            self._idle = [w for w in self._idle if w not in stale]
        for worker in stale:
            worker.stop(2)
        if stale:
            self._sweep()

    def release(self, worker: WorkerProcess) -> None:
        with self._cond:
            self._busy.discard(worker)
            if (
                self._closed
                or self._retired
                or len(self._idle) >= self.size
                or self.stale(worker)
            ):
                worker.stop(2)
            else:
                worker.since = time.monotonic()
                self._idle.append(worker)
            self._cond.notify_all()
        self._sweep()

    def discard(self, worker: WorkerProcess) -> int | None:
        """Kill (if needed) and forget a worker; returns its exit code."""
        code = worker.kill()
        with self._cond:
            self._busy.discard(worker)
            self._cond.notify_all()
        self._sweep()
        return code

    def retire(self) -> None:
        """No longer keep workers warm (their content is outdated): idle workers stop now,
        busy ones when they are given back, so a scan in progress still finishes."""
        with self._cond:
            self._retired = True
            idle = list(self._idle)
            self._idle.clear()
            self._cond.notify_all()
        for worker in idle:
            worker.stop(2)
        self._sweep()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop every worker: ask, join up to ``timeout`` s, then kill. Nothing is left."""
        with self._cond:
            self._closed = True
            workers = [*self._idle, *self._busy]
            self._idle.clear()
            self._busy.clear()
            self._cond.notify_all()
        for worker in workers:
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(("stop",))
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            worker.kill()
        with self._server_lock:
            self._sweep()
