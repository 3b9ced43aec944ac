"""Scans run in worker processes that can be killed: a small pool of our own.

Each worker is a process started through ``forkserver`` (``spawn`` where there is none; never
a plain fork of the caller, which may be a Qt process). It builds the detectors once, then
scans the batches of files the parent hands it, one report back per file. The parent knows
which file each busy worker is on and since when, so it can

- kill a worker that passes the per-file time limit (``ScanLimits.max_scan_time``), however
  it is stuck (a regular expression inside YARA, a C parser, a decompressor);
- notice a worker that died (segfault, ``os.abort()``, the OOM killer, SIGBUS);
- let a worker that hit its memory cap (``RLIMIT_AS``) retire after reporting that file;

and in each case report that one file ``incomplete`` with the reason, start a replacement
and hand the rest of the batch on. ``ProcessPoolExecutor`` cannot do this (a stuck worker
cannot be replaced, and ``max_tasks_per_child`` hangs on Python 3.11: CPython gh-115634).

The scan cache, the walk and the decisions stay in the parent; only the file work (open,
read, hash, detectors, unpacking) runs in the workers.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import pickle
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from typing import Any

from ..config import ScanLimits, ScanOptions
from ..content import ContentSources
from ..errors import ScanError
from ..paths import AegisPaths
from ..results import FileReport, ObjectResult, Verdict
from .walk import FileEntry

MiB = 1024 * 1024
DEFAULT_MEMORY_LIMIT = 3072 * MiB
"""Address space of one worker (``RLIMIT_AS``). A worker with every detector loaded maps
about 1 GiB (most of it reserved, not used); the rest is headroom for one file's work."""
KILL_GRACE = 0.5
"""Seconds past the per-file limit before the parent kills a worker (the worker's own
checks between steps usually stop the file first, with a clearer message)."""
START_ATTEMPTS = 3
PIPELINE = 2
"""Batches a worker holds at once: the next one waits in its pipe while it scans."""
_PIPE_SAFE_BYTES = 16 * 1024  # well under a pipe's buffer (64 KiB on Linux)

Scanned = tuple[FileEntry, FileReport | None]
WarnCallback = Callable[[str], None]
Fallback = Callable[[FileEntry], FileReport | None]
"""Scans a file in this process: used only when no worker can be started at all (a fault
around the scan must not cost a detection)."""


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
    """A worker with nothing to do for this long exits (the pool starts another when needed)."""
    start_timeout: float = 600.0
    """Seconds a worker may take to load its detectors (rules compiled on first use)."""


def mp_context() -> multiprocessing.context.BaseContext:
    """``forkserver`` where the platform has it, else ``spawn``; never a plain fork."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # Imported once in the fork server, shared by every worker forked from it.
        ctx.set_forkserver_preload(["aegis_engine.scanning.worker_main"])
        return ctx
    return multiprocessing.get_context("spawn")


_MAIN_LOCK = threading.Lock()
_MISSING = object()


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start workers without re-importing the caller's ``__main__`` in them.

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


def incomplete_report(
    entry: FileEntry, reason: str, verdict: Verdict = Verdict.INCOMPLETE
) -> FileReport:
    size = entry.st.st_size
    return FileReport(
        entry.path,
        verdict,
        [ObjectResult(entry.path, verdict, size=size, problems=[reason])],
        size=size,
    )


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if -exitcode == signal.SIGBUS:
            return f"file changed while scanned (the scan worker got {name})"
        return f"scan worker crashed ({name}) on this file; the scan went on"
    return f"scan worker exited unexpectedly (status {exitcode}) on this file; the scan went on"


class WorkerProcess:
    """The parent's handle on one worker process."""

    def __init__(self, ctx: multiprocessing.context.BaseContext, config: WorkerConfig) -> None:
        from .worker_main import worker_main

        self.tmpdir = tempfile.mkdtemp(prefix="aegis-worker-")
        self.conn, child = ctx.Pipe(duplex=True)
        self.process: Any = ctx.Process(  # type: ignore[attr-defined]
            target=worker_main,
            args=(child, config, self.tmpdir),
            name="aegis-scan-worker",
            daemon=True,
        )
        try:
            with _main_module_hidden():
                self.process.start()
        except BaseException:
            self.conn.close()
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            raise
        finally:
            child.close()
        self.ready = False
        self.since = time.monotonic()
        self.options: ScanOptions | None = None

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

    @property
    def processes(self) -> list[WorkerProcess]:
        with self._cond:
            return [*self._idle, *self._busy]

    def acquire(self, *, limit: int, block: bool) -> WorkerProcess | None:
        """An idle worker, or a new one while fewer than ``limit`` exist; else wait (``block``)
        or None. A non-blocking call yields to callers that are waiting."""
        with self._cond:
            while True:
                if self._closed:
                    raise ScanError("the scan worker pool is shut down")
                if not block and self._waiters:
                    return None
                while self._idle:
                    worker = self._idle.pop()
                    # Never hand out a worker that may be about to leave on its idle timeout.
                    fresh = time.monotonic() - worker.since < self.config.idle_timeout / 2
                    if worker.alive and fresh:
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
            worker = WorkerProcess(self._ctx, self.config)
        except BaseException:
            with self._cond:
                self._starting -= 1
                self._cond.notify_all()
            raise
        with self._cond:
            self._starting -= 1
            if self._closed:
                worker.kill()
                raise ScanError("the scan worker pool is shut down")
            self._busy.add(worker)
        return worker

    def release(self, worker: WorkerProcess) -> None:
        with self._cond:
            self._busy.discard(worker)
            if self._closed or self._retired or len(self._idle) >= self.size:
                worker.stop(2)
            else:
                worker.since = time.monotonic()
                self._idle.append(worker)
            self._cond.notify_all()

    def discard(self, worker: WorkerProcess) -> int | None:
        """Kill (if needed) and forget a worker; returns its exit code."""
        code = worker.kill()
        with self._cond:
            self._busy.discard(worker)
            self._cond.notify_all()
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


@dataclass
class _Job:
    worker: WorkerProcess
    entries: list[FileEntry]
    done: int = 0
    since: float = 0.0
    ends: collections.deque[int] = field(default_factory=collections.deque)
    """Where each batch sent to the worker ends in ``entries`` (at most ``PIPELINE``)."""


class PoolScan:
    """One caller's use of the pool: batches of files in, ``(entry, report)`` out.

    Not thread-safe (one scan drives it from one thread). Up to ``jobs`` workers at once;
    results come in the order the workers finish them, each batch in its own order.
    """

    def __init__(
        self,
        pool: WorkerPool,
        options: ScanOptions,
        jobs: int,
        warn: WarnCallback,
        fallback: Fallback | None = None,
        fault: WarnCallback | None = None,
    ) -> None:
        self.pool = pool
        self.fault = fault or warn
        """Told of content that could not be used (a broken rule file): a scan that finds
        nothing then ends with exit 2."""
        self.fallback = fallback
        self.options = options
        self.jobs = max(1, jobs)
        self.warn = warn
        self._queue: collections.deque[list[FileEntry]] = collections.deque()
        self._running: dict[Connection, _Job] = {}
        self._failed_starts = 0
        limit = options.limits.max_scan_time
        self._file_deadline = limit + KILL_GRACE if limit else None

    @property
    def backlog(self) -> int:
        """Batches queued or being scanned."""
        return len(self._queue) + sum(len(j.ends) for j in self._running.values())

    def submit(self, entries: Sequence[FileEntry]) -> None:
        if entries:
            self._queue.append(list(entries))

    def collect(self, timeout: float | None = None) -> list[Scanned]:
        """Wait until some files are done (or nothing is left to do, or ``timeout`` s have
        passed) and return them."""
        out: list[Scanned] = []
        give_up = None if timeout is None else time.monotonic() + timeout
        while not out and self.backlog:
            self._dispatch(out)
            if not self._running:
                continue
            now = time.monotonic()
            if give_up is not None and now >= give_up:
                break
            wait_for = self._timeout()
            if give_up is not None:
                wait_for = give_up - now if wait_for is None else min(wait_for, give_up - now)
            by_handle: dict[Any, Connection] = {}
            for conn, job in self._running.items():
                by_handle[conn] = conn
                by_handle[job.worker.process.sentinel] = conn
            for handle in wait(list(by_handle), wait_for):
                conn = by_handle[handle]
                running = self._running.get(conn)
                if running is not None:
                    self._read(conn, running, out)
            self._enforce_deadlines(out)
        return out

    def cancel(self) -> None:
        """Drop queued batches and kill busy workers (their files are not reported)."""
        self._queue.clear()
        for conn, job in list(self._running.items()):
            del self._running[conn]
            self.pool.discard(job.worker)

    def close(self) -> None:
        """Give the workers back (killing any still busy)."""
        self.cancel()

    # -- internals --------------------------------------------------------------------------
    def _dispatch(self, out: list[Scanned]) -> None:
        """Hand queued batches out: to new workers up to ``jobs``, then a second batch to
        each ready worker, so it never waits for the parent between batches."""
        while self._queue:
            if self._failed_starts >= START_ATTEMPTS and self.fallback is not None:
                self._start_failed(self._queue.popleft(), "", out)
                continue
            if len(self._running) < self.jobs:
                try:
                    worker = self.pool.acquire(limit=self.jobs, block=not self._running)
                except (OSError, ScanError) as exc:  # cannot fork, pool shut down, ...
                    self._start_failed(self._queue.popleft(), str(exc), out)
                    continue
                if worker is not None:
                    entries = self._queue.popleft()
                    job = _Job(worker, [], since=time.monotonic())
                    if self._send(job, entries, out):
                        self._running[worker.conn] = job
                    continue
            idlest = min(
                (j for j in self._running.values() if j.worker.ready and len(j.ends) < PIPELINE),
                key=lambda j: len(j.ends),
                default=None,
            )
            if idlest is None:
                return
            if not self._send(idlest, self._queue[0], out, top_up=True):
                return
            self._queue.popleft()

    def _send(
        self, job: _Job, entries: list[FileEntry], out: list[Scanned], *, top_up: bool = False
    ) -> bool:
        worker = job.worker
        options = None if worker.options == self.options else self.options
        data = pickle.dumps(("scan", options, entries), pickle.HIGHEST_PROTOCOL)
        if top_up and len(data) > _PIPE_SAFE_BYTES:
            return False  # a busy worker is not reading: never block on a full pipe
        try:
            worker.conn.send_bytes(data)
        except (OSError, ValueError):
            if not top_up:
                self._queue.appendleft(entries)
                self._lost(worker, [], 0, out)
            return False
        worker.options = self.options
        job.entries.extend(entries)
        job.ends.append(len(job.entries))
        return True

    def _timeout(self) -> float | None:
        deadlines = [d for job in self._running.values() if (d := self._deadline(job)) is not None]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def _deadline(self, job: _Job) -> float | None:
        if not job.worker.ready:
            return job.worker.since + self.pool.config.start_timeout
        if self._file_deadline is None:
            return None
        return job.since + self._file_deadline

    def _enforce_deadlines(self, out: list[Scanned]) -> None:
        now = time.monotonic()
        for conn, job in list(self._running.items()):
            deadline = self._deadline(job)
            if deadline is None or now < deadline:
                continue
            del self._running[conn]
            self.pool.discard(job.worker)
            if not job.worker.ready:
                self._start_failed(job.entries, "the scan worker did not start in time", out)
                continue
            limit = self.options.limits.max_scan_time
            entry = job.entries[job.done]
            out.append(
                (
                    entry,
                    incomplete_report(
                        entry,
                        f"max-scan-time: scanning took longer than {limit:g} s; "
                        "the scan worker was stopped",
                    ),
                )
            )
            self._requeue(job.entries[job.done + 1 :])

    def _read(self, conn: Connection, job: _Job, out: list[Scanned]) -> None:
        try:
            while conn.poll():
                msg = conn.recv()
                kind = msg[0]
                if kind in ("ok", "report"):
                    entry = job.entries[job.done]
                    if kind == "ok":  # clean: only its digest and size travel
                        report = FileReport(entry.path, Verdict.CLEAN, [], msg[1], msg[2])
                    else:
                        report = msg[1]
                    out.append((entry, report))
                    job.done += 1
                    job.since = time.monotonic()
                    if job.done == job.ends[0]:
                        job.ends.popleft()
                        if not job.ends:
                            del self._running[conn]
                            self.pool.release(job.worker)
                            return
                elif kind == "ready":
                    job.worker.ready = True
                    job.since = time.monotonic()
                    self._failed_starts = 0
                elif kind == "warn":
                    self.warn(msg[1])
                elif kind == "fault":
                    self.fault(msg[1])
                elif kind == "retire":  # hit its memory cap after reporting the file
                    del self._running[conn]
                    self.pool.discard(job.worker)
                    self._requeue(job.entries[job.done :])
                    return
                elif kind == "fatal":
                    del self._running[conn]
                    self.pool.discard(job.worker)
                    self._start_failed(job.entries, msg[1], out)
                    return
        except (EOFError, OSError):
            pass
        if not job.worker.alive:  # died: blame the file it was on
            del self._running[conn]
            self._lost(job.worker, job.entries, job.done, out, job)

    def _lost(
        self,
        worker: WorkerProcess,
        entries: list[FileEntry],
        done: int,
        out: list[Scanned],
        job: _Job | None = None,
    ) -> None:
        code = self.pool.discard(worker)
        if job is None:
            return  # never had the batch: it is back in the queue
        if not worker.ready:
            self._start_failed(job.entries, _exit_reason(code), out)
            return
        entry = entries[done]
        out.append((entry, incomplete_report(entry, _exit_reason(code))))
        self._requeue(entries[done + 1 :])

    def _start_failed(self, entries: list[FileEntry], reason: str, out: list[Scanned]) -> None:
        self._failed_starts += 1
        if self._failed_starts < START_ATTEMPTS:
            self._requeue(entries)
            return
        if self.fallback is not None:
            if self._failed_starts == START_ATTEMPTS:
                self.warn(f"scan workers could not start ({reason}); scanning in this process")
            for entry in entries:
                out.append((entry, self.fallback(entry)))
            return
        message = f"cannot scan: the scan worker could not start ({reason})"
        for entry in entries:
            out.append((entry, incomplete_report(entry, message, Verdict.ERROR)))

    def _requeue(self, entries: list[FileEntry]) -> None:
        if entries:
            self._queue.appendleft(entries)


def detector_limits(limits: ScanLimits) -> ScanLimits:
    """The limits detectors are built with: YARA's own timeout never exceeds the per-file
    time limit (the worker is killed past it anyway)."""
    if limits.max_scan_time:
        cap = max(1, int(limits.max_scan_time + 0.999))
        if limits.yara_timeout == 0 or limits.yara_timeout > cap:
            return replace(limits, yara_timeout=cap)
    return limits


def scan_one(
    pool: WorkerPool,
    options: ScanOptions,
    entry: FileEntry,
    warn: WarnCallback,
    fallback: Fallback | None = None,
) -> FileReport | None:
    """Scan one file in a worker (on-access scanning): the same rules as a whole scan."""
    session = PoolScan(pool, options, 1, warn, fallback)
    session.submit([entry])
    try:
        while session.backlog:
            for _, report in session.collect():
                return report
        return None
    finally:
        session.close()
