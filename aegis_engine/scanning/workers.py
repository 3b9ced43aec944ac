"""Scans run in worker processes that can be killed: a small pool of our own.

Each worker is a process started through ``forkserver`` (``spawn`` where there is none; never
a plain fork of the caller, which may be a Qt process). It builds the detectors once, then
scans the batches of files the parent hands it, sending each file's result back as soon as
it is done (``worker_main.Results``; it can hold them for a few at a time, which is off by
default). The parent knows which file each busy worker is on and since when (a worker that
holds results says so at once when one file is slow; when the parent cannot know, the files
not reported are scanned again one per batch), so it can

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
import pickle
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from typing import Any

from ..config import ScanLimits, ScanOptions
from ..errors import ScanError
from ..results import FileReport, ObjectResult, Verdict
from .walk import FileEntry
from .worker_pool import (
    DEFAULT_MEMORY_LIMIT,
    WorkerConfig,
    WorkerPool,
    WorkerProcess,
    is_large,
    mp_context,
    split_large,
)

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "PoolScan",
    "WorkerConfig",
    "WorkerPool",
    "WorkerProcess",
    "detector_limits",
    "incomplete_report",
    "mp_context",
    "scan_one",
]

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


@dataclass
class _Job:
    worker: WorkerProcess
    entries: list[FileEntry]
    done: int = 0
    since: float = 0.0
    ends: collections.deque[int] = field(default_factory=collections.deque)
    """Where each batch sent to the worker ends in ``entries`` (at most ``PIPELINE``)."""
    sure: bool = False
    """The worker said it is on ``entries[done]`` (results come a few files at a time, so
    otherwise it may be on any file of its batch from there)."""

    def culprit_known(self) -> bool:
        """Whether the file the worker is on is known: it said so, or only one file of its
        current batch is left."""
        return self.sure or self.ends[0] - self.done <= 1

    def unsure_files(self) -> list[FileEntry]:
        """The files of the current batch the worker may have been on."""
        return self.entries[self.done : self.ends[0]]
    large: collections.deque[bool] = field(default_factory=collections.deque)
    """For each batch in ``ends``: whether it is a large file (``worker_pool.is_large``)."""


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
        *,
        limit: int | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        self.pool = pool
        self.idle_timeout = idle_timeout
        """How long a worker this scan starts stays idle (None: the pool's default)."""
        self.fault = fault or warn
        """Told of content that could not be used (a broken rule file): a scan that finds
        nothing then ends with exit 2."""
        self.fallback = fallback
        self.limit = limit or max(1, jobs)
        """How many workers the pool may hold in all before this scan waits for one."""
        self.options = options
        self.jobs = max(1, jobs)
        self.warn = warn
        self._queue: collections.deque[list[FileEntry]] = collections.deque()
        self._running: dict[Connection, _Job] = {}
        self._failed_starts = 0
        seconds = options.limits.max_scan_time
        self._file_deadline = seconds + KILL_GRACE if seconds else None

    @property
    def backlog(self) -> int:
        """Batches queued or being scanned."""
        return len(self._queue) + sum(len(j.ends) for j in self._running.values())

    def submit(self, entries: Sequence[FileEntry]) -> None:
        self._queue.extend(split_large(entries))

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
        each ready worker, so it never waits for the parent between batches. A large file
        waits while another is in a worker; the small files behind it go ahead."""
        while self._queue:
            if self._failed_starts >= START_ATTEMPTS and self.fallback is not None:
                self._start_failed(self._queue.popleft(), "", out)
                continue
            index = self._next_batch()
            if index is None:
                return  # only large files queued, one is in a worker: wait for it
            if len(self._running) < self.jobs:
                try:
                    worker = self.pool.acquire(
                        limit=self.limit, block=not self._running, idle_timeout=self.idle_timeout
                    )
                except (OSError, ScanError) as exc:  # cannot fork, pool shut down, ...
                    self._start_failed(self._take(index), str(exc), out)
                    continue
                if worker is not None:
                    entries = self._take(index)
                    job = _Job(worker, [], since=time.monotonic())
                    if self._send(job, entries, out):
                        self._running[worker.conn] = job
                    continue
            idlest = min(
                (
                    j
                    for j in self._running.values()
                    if j.worker.ready and len(j.ends) < PIPELINE and not self.pool.stale(j.worker)
                ),
                key=lambda j: len(j.ends),
                default=None,
            )
            if idlest is None:
                return
            if not self._send(idlest, self._queue[index], out, top_up=True):
                return
            self._take(index)

    def _next_batch(self) -> int | None:
        """Where in the queue the next batch to hand out is: the first one, unless it is a
        large file while another large file is in a worker (then the first small batch)."""
        if not any(any(job.large) for job in self._running.values()):
            return 0
        for index, batch in enumerate(self._queue):
            if not any(is_large(e) for e in batch):
                return index
        return None

    def _take(self, index: int) -> list[FileEntry]:
        batch = self._queue[index]
        del self._queue[index]
        return batch

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
        job.large.append(any(is_large(e) for e in entries))
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
            if job.worker.ready and _readable(conn):  # it said something meanwhile: hear it
                self._read(conn, job, out)
                continue
            del self._running[conn]
            self.pool.discard(job.worker)
            if not job.worker.ready:
                self._start_failed(job.entries, "the scan worker did not start in time", out)
                continue
            if not job.culprit_known():
                self._retry_one_by_one(job)
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
                if msg[0] == "batch":
                    job.sure = msg[2]  # busy: it is on the file after these
                    job.since = time.monotonic()
                    for result in msg[1]:
                        if self._result(conn, job, result, out):
                            return
                    if msg[3] and self._take_back(conn, job, msg[3]):
                        return
                elif self._message(conn, job, msg, out):
                    return
        except (EOFError, OSError):
            pass
        if not job.worker.alive:  # died: blame the file it was on
            del self._running[conn]
            self._lost(job.worker, job.entries, job.done, out, job)

    def _result(
        self, conn: Connection, job: _Job, msg: tuple[Any, ...], out: list[Scanned]
    ) -> bool:
        """One file's result; True once the worker has no batch left (it is given back)."""
        entry = job.entries[job.done]
        if msg[0] == "ok":  # clean: only its digest and size travel
            report = FileReport(entry.path, Verdict.CLEAN, [], msg[1], msg[2])
        else:
            report = msg[1]
        out.append((entry, report))
        job.done += 1
        if job.done == job.ends[0]:
            job.ends.popleft()
            job.large.popleft()
            if not job.ends:
                del self._running[conn]
                self.pool.release(job.worker)
                return True
        return False

    def _take_back(self, conn: Connection, job: _Job, count: int) -> bool:
        """The worker gave back the last ``count`` files of its current batch unscanned:
        they go first in the queue, in one part per worker (so another worker takes a share
        even when this one is free again first). True once the worker has no batch left."""
        end = job.ends[0]
        start = max(job.done, end - count)  # == job.done: its results came first
        back = job.entries[start:end]
        share = -(-len(back) // self.jobs)  # one part per worker, this one's included
        for first in reversed(range(0, len(back), share)):
            self._requeue(back[first : first + share])
        del job.entries[start:end]
        job.ends.popleft()
        job.large.popleft()
        job.ends = collections.deque(e - (end - start) for e in job.ends)
        job.sure = False
        if not job.ends:
            del self._running[conn]
            self.pool.release(job.worker)
            return True
        return False

    def _message(
        self, conn: Connection, job: _Job, msg: tuple[Any, ...], out: list[Scanned]
    ) -> bool:
        """Any other message; True when this worker's job is over."""
        kind = msg[0]
        if kind == "ready":
            job.worker.ready = True
            job.since = time.monotonic()
            self._failed_starts = 0
        elif kind == "model":  # it needed the ML model: later workers get it shared
            self.pool.want_model()
        elif kind == "warn":
            self.warn(msg[1])
        elif kind == "fault":
            self.fault(msg[1])
        elif kind == "retire":  # hit its memory cap after reporting the file
            del self._running[conn]
            self.pool.discard(job.worker)
            self._requeue(job.entries[job.done :])
            return True
        elif kind == "fatal":
            del self._running[conn]
            self.pool.discard(job.worker)
            self._start_failed(job.entries, msg[1], out)
            return True
        return False

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
        if not job.culprit_known():
            self._retry_one_by_one(job)
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

    def _retry_one_by_one(self, job: _Job) -> None:
        """The worker died or was stopped somewhere in the files it had not reported: scan
        them again one per batch, so the file that did it is the one reported."""
        self._requeue(job.entries[job.ends[0] :])
        for entry in reversed(job.unsure_files()):
            self._queue.appendleft([entry])

    def _requeue(self, entries: list[FileEntry]) -> None:
        self._queue.extendleft(reversed(split_large(entries)))


def _readable(conn: Connection) -> bool:
    try:
        return conn.poll()
    except (EOFError, OSError):
        return False


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
    *,
    idle_timeout: float | None = None,
) -> FileReport | None:
    """Scan one file in a worker (on-access scanning): the same rules as a whole scan.

    It may start one worker more than the pool's size, so a full scan that keeps every
    worker busy does not hold on-access scanning up. A worker it starts leaves after
    ``idle_timeout`` s with nothing to do (on-access: ``[realtime] worker_idle``)."""
    session = PoolScan(
        pool, options, 1, warn, fallback, limit=pool.size + 1, idle_timeout=idle_timeout
    )
    session.submit([entry])
    try:
        while session.backlog:
            for _, report in session.collect():
                return report
        return None
    finally:
        session.close()
