"""On-access scanning: scan each created, written or moved-in file once it has settled.

Settling. Events for one path are coalesced into one pending entry with a due time:

* closed after writing, or renamed / moved into place: due ``close_grace`` later (5 ms);
* created, or written while still open: due ``quiet_delay`` after the last write (1 s);
* never later than ``max_defer`` after its first event (10 s), for files written without pause.

Bounded memory. At most ``max_pending`` paths wait. An event for one more path is not
dropped: its folder goes on a "rescan later" list (at most ``max_rescan_folders`` folders;
past that, the whole watched root is marked). When the backlog has drained below a quarter,
those folders are walked and every file changed since the overflow began (by ``st_ctime``) is
scanned. A kernel queue overflow marks the whole root the same way. An ``error`` event (code
``overflow``) says so when it starts and a ``status`` event (``rescan-done``) when it is over:
degraded, never silent.
"""

from __future__ import annotations

import heapq
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ..results import FileReport, Verdict
from .events import ErrorEvent, MonitorEvent, StatusEvent
from .fsevents import FsEvent, FsKind
from .options import MonitorOptions
from .worker import Worker

__all__ = ["OnAccessScanner", "OnAccessStats"]

log = logging.getLogger(__name__)

ScanFn = Callable[[str], FileReport | None]
ReportSink = Callable[[FileReport, str], None]
EmitFn = Callable[[MonitorEvent], None]

_RESCAN_STEP = 512
"""Directory entries looked at per step of a rescan before fresh events get a turn."""


@dataclass
class _Pending:
    first: float
    due: float


@dataclass
class _Rescan:
    path: str
    recursive: bool
    since: float
    """Wall-clock time; files with ``st_ctime`` at or after it are scanned."""
    it: Iterator[tuple[str, os.stat_result]] | None = None


@dataclass
class OnAccessStats:
    events: int = 0
    scanned: int = 0
    threats: int = 0
    failed: int = 0
    deferred: int = 0
    """Events that did not fit in the pending table and went to the rescan list."""
    overflows: int = 0
    rescanned: int = 0
    max_pending_seen: int = 0


class OnAccessScanner(Worker):
    """Consumes file events (:meth:`observe`, on the source's thread) and scans on its own
    ``aegis-onaccess`` thread."""

    thread_name = "aegis-onaccess"

    def __init__(
        self,
        scan: ScanFn,
        *,
        options: MonitorOptions,
        on_report: ReportSink,
        emit: EmitFn,
        skip: Callable[[str], bool] = lambda _p: False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._scan = scan
        self._opt = options
        self._on_report = on_report
        self._emit = emit
        self._skip = skip
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: dict[str, _Pending] = {}
        self._heap: list[tuple[float, str]] = []
        self._rescans: dict[tuple[str, bool], _Rescan] = {}
        self._rescan_roots: set[str] = set()
        self._overflowing = False
        self._stop = False
        self._last_ok_wall = time.time()
        self.stats = OnAccessStats()

    # -- intake (source thread) ----------------------------------------------------------------
    def observe(self, batch: Sequence[FsEvent]) -> None:
        now = self._clock()
        opt = self._opt
        with self._cond:
            wake = False
            for ev in batch:
                kind = ev.kind
                if kind is FsKind.OVERFLOW or kind is FsKind.ROOT_BACK:
                    since = self._last_ok_wall - 5.0 if kind is FsKind.OVERFLOW else 0.0
                    self._defer_root(ev.root, since, kernel=kind is FsKind.OVERFLOW)
                    wake = True
                    continue
                if kind is FsKind.ROOT_GONE:
                    self._forget_below(ev.root)
                    continue
                if ev.is_dir:
                    continue
                if kind is FsKind.DELETED or kind is FsKind.MOVED_OUT:
                    self._pending.pop(ev.path, None)
                    continue
                if kind is FsKind.MOVED:
                    self._pending.pop(ev.path, None)
                    target = ev.dest or ev.path
                    delay = opt.close_grace
                elif kind is FsKind.MOVED_IN or kind is FsKind.CLOSED:
                    target, delay = ev.path, opt.close_grace
                elif kind is FsKind.CREATED or kind is FsKind.MODIFIED:
                    target, delay = ev.path, opt.quiet_delay
                else:
                    continue
                if self._skip(target):
                    continue
                self.stats.events += 1
                wake |= self._schedule(target, now, delay, ev.root)
            self._last_ok_wall = time.time()
            if wake:
                self._cond.notify()

    def _schedule(self, path: str, now: float, delay: float, root: str) -> bool:
        entry = self._pending.get(path)
        if entry is None:
            if len(self._pending) >= self._opt.max_pending:
                self._defer_folder(os.path.dirname(path), root)
                return False
            due = now + delay
            self._pending[path] = _Pending(now, due)
            n = len(self._pending)
            if n > self.stats.max_pending_seen:
                self.stats.max_pending_seen = n
            heapq.heappush(self._heap, (due, path))
            return True
        due = min(now + delay, entry.first + self._opt.max_defer)
        if due < entry.due:
            entry.due = due
            heapq.heappush(self._heap, (due, path))
            if len(self._heap) > 4 * self._opt.max_pending:
                self._heap = [(e.due, p) for p, e in self._pending.items()]
                heapq.heapify(self._heap)
            return True
        entry.due = due  # later: the popped heap entry is pushed back with this due time
        return False

    def _start_overflow(self, why: str) -> None:
        self.stats.overflows += 1
        if not self._overflowing:
            self._overflowing = True
            self._emit(
                ErrorEvent(
                    code="overflow",
                    message=f"{why}; the folders concerned will be rescanned once the "
                    "backlog is done (files changed since then are scanned, none is skipped)",
                )
            )

    def _defer_folder(self, folder: str, root: str) -> None:
        self.stats.deferred += 1
        since = self._last_ok_wall - 5.0
        if root in self._rescan_roots:
            return
        key = (folder, False)
        task = self._rescans.get(key)
        if task is not None:
            task.since = min(task.since, since)
            return
        if len(self._rescans) >= self._opt.max_rescan_folders:
            self._defer_root(root, since, kernel=False)
            return
        self._start_overflow(
            f"more than {self._opt.max_pending} files are waiting to be scanned (event storm)"
        )
        self._rescans[key] = _Rescan(folder, False, since)

    def _defer_root(self, root: str, since: float, *, kernel: bool) -> None:
        if kernel:
            self._start_overflow("the kernel's event queue overflowed: events were lost")
        elif since > 0:
            self._start_overflow(
                f"more than {self._opt.max_rescan_folders} folders are waiting to be rescanned"
            )
        below = root + os.sep
        for key in [k for k in self._rescans if k[0] == root or k[0].startswith(below)]:
            since = min(since, self._rescans.pop(key).since)
        self._rescan_roots.add(root)
        self._rescans[(root, True)] = _Rescan(root, True, since)

    def _forget_below(self, root: str) -> None:
        below = root + os.sep
        for path in [p for p in self._pending if p.startswith(below)]:
            del self._pending[path]

    # -- worker --------------------------------------------------------------------------------

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    @property
    def rescan_backlog(self) -> int:
        with self._cond:
            return len(self._rescans)

    def idle(self) -> bool:
        """Nothing pending and nothing to rescan."""
        with self._cond:
            return not self._pending and not self._rescans

    def _next_due(self) -> tuple[str | None, float | None]:
        """Pop a due path, or say how long until the next one is due (lock held)."""
        while self._heap:
            due, path = self._heap[0]
            entry = self._pending.get(path)
            if entry is None:
                heapq.heappop(self._heap)
                continue
            now = self._clock()
            if entry.due > due:  # postponed since this heap entry was pushed
                heapq.heapreplace(self._heap, (entry.due, path))
                continue
            if due > now:
                return None, due - now
            heapq.heappop(self._heap)
            del self._pending[path]
            return path, None
        return None, None

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stop:
                    return
                path, wait = self._next_due()
                task: _Rescan | None = None
                if (
                    path is None
                    and self._rescans
                    and len(self._pending) < max(1, self._opt.max_pending // 4)
                ):
                    task = next(iter(self._rescans.values()))
                elif path is None:
                    if self._overflowing and not self._rescans:
                        self._finish_overflow()
                    self._cond.wait(wait)
                    continue
            if path is not None:
                self._scan_one(path, "on-access")
            elif task is not None:
                self._rescan_step(task)

    def _finish_overflow(self) -> None:
        self._overflowing = False
        self._rescan_roots.clear()
        self._emit(
            StatusEvent(
                state="rescan-done",
                message="caught up after the event overflow",
                details={"rescanned": self.stats.rescanned, "deferred": self.stats.deferred},
            )
        )

    def _rescan_step(self, task: _Rescan) -> None:
        if task.it is None:
            task.it = _walk_files(task.path, task.recursive, self._skip)
        batch: list[str] = []
        looked = 0
        done = False
        for path, st in _take(task.it, _RESCAN_STEP):
            looked += 1
            if st.st_ctime >= task.since:
                batch.append(path)
        if looked < _RESCAN_STEP:
            done = True
        for path in batch:
            with self._cond:
                if self._stop:
                    return
            self.stats.rescanned += 1
            self._scan_one(path, "rescan")
        if done:
            with self._cond:
                key = (task.path, task.recursive)
                if self._rescans.get(key) is task:
                    del self._rescans[key]
                    if task.recursive:
                        self._rescan_roots.discard(task.path)

    def _scan_one(self, path: str, source: str) -> None:
        try:
            report = self._scan(path)
        except Exception as exc:  # one file's failure must not stop on-access scanning
            self.stats.failed += 1
            log.debug("on-access scan of %s failed", path, exc_info=True)
            self._emit(ErrorEvent(code="scan-failed", message=f"cannot scan: {exc}", path=path))
            return
        if report is None:
            return
        self.stats.scanned += 1
        if report.verdict is not Verdict.CLEAN:
            if report.verdict.is_threat:
                self.stats.threats += 1
            self._on_report(report, source)


def _take(it: Iterator[tuple[str, os.stat_result]], n: int) -> Iterator[tuple[str, os.stat_result]]:
    for _ in range(n):
        try:
            yield next(it)
        except StopIteration:
            return


def _walk_files(
    top: str, recursive: bool, skip: Callable[[str], bool]
) -> Iterator[tuple[str, os.stat_result]]:
    """Regular files below ``top`` with their lstat; links not followed, errors skipped."""
    stack = [top]
    seen: set[tuple[int, int]] = set()
    while stack:
        folder = stack.pop()
        if skip(folder):
            continue
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            continue
        for entry in entries:
            if skip(entry.path):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if recursive and (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    stack.append(entry.path)
            elif stat.S_ISREG(st.st_mode):
                yield entry.path, st
