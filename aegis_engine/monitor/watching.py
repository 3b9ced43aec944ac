"""Event sources: where file-system events come from.

* :class:`InotifySource` (Linux): :class:`~.inotify.InotifyTree` read on one thread; events
  reach the monitor a few microseconds after the kernel has them.
* :class:`WatchdogSource`: watchdog's native observer (other systems) or its polling observer
  (the fallback when the inotify watch limit is reached; events come late and coarse).

Both call ``sink(batch)`` on their own thread, and both notice a watched root that is deleted
and watch it again when it is back. Neither follows symbolic links.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .fsevents import EventSink, FsEvent, FsKind, ProblemSink
from .inotify import AddResult, InotifyTree

__all__ = ["EventSource", "InotifySource", "WatchdogSource"]

log = logging.getLogger(__name__)


class EventSource(Protocol):
    name: str

    def start(self, sink: EventSink) -> list[AddResult]: ...

    def stop(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...

    @property
    def threads(self) -> list[threading.Thread]: ...


class InotifySource:
    """Roots watched with inotify, read on the ``aegis-inotify`` thread."""

    name = "inotify"

    def __init__(
        self,
        roots: Sequence[str],
        *,
        skip: Callable[[str], bool],
        on_problem: ProblemSink,
        root_check_interval: float = 1.0,
        on_idle: Callable[[], None] | None = None,
        idle_interval: Callable[[], float | None] | None = None,
    ) -> None:
        self._roots = list(roots)
        self._skip = skip
        self._problem = on_problem
        self._check_interval = root_check_interval
        self._on_idle = on_idle
        self._idle_interval = idle_interval
        self._tree: InotifyTree | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._sink: EventSink | None = None

    @property
    def threads(self) -> list[threading.Thread]:
        return [self._thread] if self._thread is not None else []

    @property
    def watch_count(self) -> int:
        return self._tree.watch_count if self._tree is not None else 0

    def start(self, sink: EventSink) -> list[AddResult]:
        """Add every watch (so that events are caught once this returns), then read."""
        self._tree = InotifyTree(skip=self._skip, on_problem=self._problem)
        self._sink = sink
        results = [self._tree.add_root(r) for r in self._roots]
        self._thread = threading.Thread(target=self._run, name="aegis-inotify", daemon=False)
        self._thread.start()
        return results

    def remove_root(self, root: str) -> None:
        """Stop watching ``root`` (only from the reader thread or before start)."""
        if self._tree is not None:
            self._tree.remove_root(root)

    def _run(self) -> None:
        tree, sink = self._tree, self._sink
        assert tree is not None and sink is not None
        try:
            while not self._stop.is_set():
                timeout = self._check_interval if tree.missing_roots() else None
                if self._idle_interval is not None:
                    wanted = self._idle_interval()
                    if wanted is not None:
                        wanted = max(0.0, wanted)
                        timeout = wanted if timeout is None else min(timeout, wanted)
                batch = tree.read(timeout)
                if self._stop.is_set():
                    break
                if tree.missing_roots():
                    batch.extend(tree.check_roots())
                if batch:
                    self._deliver(sink, batch)
                if self._on_idle is not None:
                    self._on_idle()
        finally:
            tree.close()

    def _deliver(self, sink: EventSink, batch: list[FsEvent]) -> None:
        try:
            sink(batch)
        except Exception:  # the reader must survive a consumer's bug
            log.exception("monitor: event consumer failed")
            self._problem("internal", "an event consumer failed; see the log", None)

    def stop(self) -> None:
        self._stop.set()
        if self._tree is not None:
            self._tree.wake()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


def _make_handler(source: WatchdogSource, root: str) -> Any:
    """A watchdog event handler for ``root`` (watchdog is imported only when it is used:
    it costs about 4 MB of memory that the inotify backend does not need)."""
    from watchdog.events import FileSystemEventHandler

    class _Handler(FileSystemEventHandler):
        def dispatch(self, event: Any) -> None:
            ev = _convert(event, root, polled=source.polling)
            if ev is None:
                return
            if ev.kind is FsKind.DELETED and ev.is_dir and ev.path == root:
                ev = FsEvent(FsKind.ROOT_GONE, root, root, is_dir=True, polled=ev.polled)
                source.root_gone(root)
            if source.skip(ev.path):
                return
            source.deliver([ev])

    return _Handler()


def _text(p: bytes | str) -> str:
    return os.fsdecode(p)


def _convert(event: Any, root: str, *, polled: bool) -> FsEvent | None:
    kind = event.event_type
    path = _text(event.src_path)
    is_dir = event.is_directory
    if kind == "created":
        return FsEvent(FsKind.CREATED, path, root, is_dir=is_dir, polled=polled)
    if kind == "modified":
        return None if is_dir else FsEvent(FsKind.MODIFIED, path, root, polled=polled)
    if kind == "closed":
        return FsEvent(FsKind.CLOSED, path, root, polled=polled)
    if kind == "deleted":
        return FsEvent(FsKind.DELETED, path, root, is_dir=is_dir, polled=polled)
    if kind == "moved":
        dest = _text(event.dest_path)
        if not path:
            return FsEvent(FsKind.MOVED_IN, dest, root, is_dir=is_dir, polled=polled)
        if not dest:
            return FsEvent(FsKind.MOVED_OUT, path, root, is_dir=is_dir, polled=polled)
        return FsEvent(FsKind.MOVED, path, root, dest=dest, is_dir=is_dir, polled=polled)
    return None


class _OverflowLog(logging.Handler):
    """watchdog only logs a kernel queue overflow; turn that log line into an event."""

    def __init__(self, source: WatchdogSource) -> None:
        super().__init__(logging.WARNING)
        self._source = source

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self._source.overflow()


class WatchdogSource:
    """Roots watched by a watchdog observer (native, or polling when ``polling``)."""

    def __init__(
        self,
        roots: Sequence[str],
        *,
        skip: Callable[[str], bool],
        on_problem: ProblemSink,
        polling: bool = False,
        polling_interval: float = 30.0,
        root_check_interval: float = 1.0,
    ) -> None:
        self.name = "polling" if polling else "watchdog"
        self.polling = polling
        self.skip = skip
        self._roots = list(roots)
        self._problem = on_problem
        self._interval = polling_interval
        self._check_interval = root_check_interval
        self._observer: Any = None
        self._watches: dict[str, Any] = {}
        self._missing: set[str] = set()
        self._lock = threading.Lock()
        self._sink: EventSink | None = None
        self._stop = threading.Event()
        self._checker: threading.Thread | None = None
        self._log_handler = _OverflowLog(self)

    @property
    def threads(self) -> list[threading.Thread]:
        out: list[threading.Thread] = []
        if self._observer is not None:
            out.append(self._observer)
        if self._checker is not None:
            out.append(self._checker)
        return out

    def _make_observer(self) -> Any:
        if self.polling:
            from watchdog.observers.polling import PollingObserver

            return PollingObserver(timeout=self._interval)
        from watchdog.observers import Observer

        return Observer()

    def start(self, sink: EventSink) -> list[AddResult]:
        self._sink = sink
        self._observer = self._make_observer()
        results = []
        for root in self._roots:
            results.append(AddResult(root, watched=int(self._schedule(root))))
        logging.getLogger("watchdog.observers.inotify_c").addHandler(self._log_handler)
        self._observer.start()
        self._checker = threading.Thread(
            target=self._check_roots, name="aegis-watch-roots", daemon=False
        )
        self._checker.start()
        return results

    def _schedule(self, root: str) -> bool:
        assert self._observer is not None
        if not os.path.isdir(root):
            with self._lock:
                self._missing.add(root)
            return False
        try:
            watch = self._observer.schedule(_make_handler(self, root), root, recursive=True)
        except OSError as exc:
            self._problem("watch-failed", f"cannot watch this folder: {exc}", root)
            with self._lock:
                self._missing.add(root)
            return False
        with self._lock:
            self._watches[root] = watch
        return True

    def root_gone(self, root: str) -> None:
        with self._lock:
            self._missing.add(root)

    def overflow(self) -> None:
        self.deliver([FsEvent(FsKind.OVERFLOW, r, r, is_dir=True) for r in self._roots])

    def deliver(self, batch: list[FsEvent]) -> None:
        if self._sink is None or self._stop.is_set():
            return
        try:
            self._sink(batch)
        except Exception:
            log.exception("monitor: event consumer failed")

    def _check_roots(self) -> None:
        while not self._stop.wait(self._check_interval):
            with self._lock:
                missing = [r for r in self._missing if os.path.isdir(r)]
            for root in missing:
                with self._lock:
                    old = self._watches.pop(root, None)
                    self._missing.discard(root)
                if old is not None and self._observer is not None:
                    with contextlib.suppress(KeyError, RuntimeError):
                        self._observer.unschedule(old)
                if self._schedule(root):
                    self.deliver([FsEvent(FsKind.ROOT_BACK, root, root, is_dir=True)])

    def stop(self) -> None:
        self._stop.set()
        logging.getLogger("watchdog.observers.inotify_c").removeHandler(self._log_handler)
        if self._observer is not None:
            self._observer.stop()

    def join(self, timeout: float | None = None) -> None:
        if self._checker is not None:
            self._checker.join(timeout)
        if self._observer is not None and self._observer.is_alive():
            self._observer.join(timeout)


def describe_results(results: Sequence[AddResult]) -> dict[str, Any]:
    return {
        "folders_watched": sum(r.watched for r in results),
        "folders_denied": sum(len(r.denied) for r in results),
        "folders_unwatched": sum(r.unwatched for r in results),
    }
