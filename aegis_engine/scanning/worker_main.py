"""What runs inside a scan worker process (see ``workers.py`` for the parent's side).

Messages to the parent: ``("ready",)`` once the detectors are loaded; ``("batch", results,
busy, returned)`` with the results of the next files in batch order (each ``("ok", sha256,
size)`` for a clean file or ``("report", report)``), sent when the batch ends, when results
have been kept for :data:`FLUSH_SECONDS` (0 by default: each as soon as its file is done),
or by a watching thread when one file has taken longer than :data:`SLOW_FILE_SECONDS`
(``busy`` true: no result is held back and the worker is now on the file after these, so
the parent knows which file to blame if it has to stop the worker); ``returned``
is how many files of the batch, after these, the worker gives back unscanned because the
batch has taken :data:`GIVE_BACK_SECONDS` already (so a batch of slow files does not keep
the other workers idle at the end of a scan); ``("warn", text)``;
``("model",)`` once it made the ML model's session (a PE file); ``("retire",)`` after a file
that hit the memory cap (the parent starts a fresh worker); ``("fatal", text)`` if the
detectors cannot be built.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING

from ..detectors.base import Detector, ScanObject
from ..detectors.registry import DetectorContext, load_detectors
from ..ml.features import FEATURE_NAMES
from .scanner import FileScanner
from .walk import FileEntry

if TYPE_CHECKING:
    from .worker_pool import WorkerConfig

PARENT_CHECK_SECONDS = 1.0
FLUSH_SECONDS = 0.0
"""Longest a finished file's result waits to be sent with the next ones. 0: each result is
sent as soon as its file is done. Sending them a few at a time (0.005 or 0.05 s) cut the
scan's CPU by 3-14% but made whole scans 1.2-1.5x slower on a busy machine, where the
scan got a smaller share of the cores (docs/benchmarks.md, 2026-12-07), so it is off."""
SLOW_FILE_SECONDS = 1.0
"""A file on which the worker has spent this long gets the results before it sent at once,
marked ``busy``. The thread that watches for it wakes this often while a batch is scanned,
and no more: each wake-up takes the GIL from the scanning thread, which on a loaded machine
can stall it for a whole time slice of the scheduler."""
GIVE_BACK_SECONDS = 1.0
"""A batch that has taken this long gives its files not yet started back to the parent,
which hands them to whichever worker is free first."""


def limit_memory(limit: int) -> None:
    if limit <= 0:
        return
    try:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass  # no such limit here: the time limit and crash handling still apply


def _exit_with_parent() -> None:
    """A worker whose parent is gone exits, even while its main thread is stuck in a match."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_SECONDS)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="aegis-worker-watch", daemon=True).start()


def _warm_up(detectors: list[Detector]) -> None:
    """Load every detector's content now (rules compiled or read from the cache, lists
    parsed), so the first file's time limit is spent on the file, and so workers forked from
    the preload server share all of it. The ML model's session is made on the first PE file
    (see :func:`warm_model`)."""
    probe = ScanObject(path="<warm-up>", name="warm-up", data=b"", size=0, hashes={})
    for det in detectors:
        try:
            det.scan(probe)
        except Exception:  # the real files report whatever this detector says
            continue


def _model_loaded(detectors: list[Detector]) -> bool:
    from ..ml.detector import MLDetector

    return any(isinstance(d, MLDetector) and d.session_loaded for d in detectors)


def warm_model(detectors: list[Detector]) -> None:
    """Create the ML model's session now (onnxruntime imported, ~30-40 MB) instead of on the
    first PE file: done once in the preload server, once some worker of its pool needed the
    model, before it forks the next workers (which then share it)."""
    from ..ml.detector import MLDetector

    for det in detectors:
        if isinstance(det, MLDetector):
            try:
                det.score_vectors([[0.0] * len(FEATURE_NAMES)])
            except Exception:  # the real files report whatever this detector says
                continue


class Outbox:
    """Where the detectors' warnings and faults go: kept while the content is loaded in the
    preload server (which has no scan to report to), sent by each worker forked from it
    first thing, then straight to that worker's parent."""

    def __init__(self) -> None:
        self.kept: list[tuple[object, ...]] = []
        self.send: Callable[[tuple[object, ...]], None] | None = None

    def warn(self, text: str) -> None:
        self._out(("warn", text))

    def fault(self, text: str) -> None:
        self._out(("fault", text))

    def _out(self, message: tuple[object, ...]) -> None:
        if self.send is None:
            self.kept.append(message)
        else:
            self.send(message)


def load_content(config: WorkerConfig, outbox: Outbox) -> list[Detector]:
    """Build the detectors and load all their content (raises when that fails)."""
    ctx = DetectorContext(config.paths, config.content, config.limits, outbox.warn, outbox.fault)
    detectors = load_detectors(ctx, plugins=config.plugins, extra=config.extra_factories)
    _warm_up(detectors)
    return detectors


def _sender(conn: Connection) -> Callable[[tuple[object, ...]], None]:
    send_lock = threading.Lock()

    def send(message: tuple[object, ...]) -> None:
        with send_lock:
            conn.send(message)

    return send


def worker_main(conn: Connection, config: WorkerConfig, tmpdir: str) -> None:
    """A worker that loads its own content (where there is no preload server)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle
    limit_memory(config.memory_limit)
    _exit_with_parent()
    outbox = Outbox()
    outbox.send = _sender(conn)
    try:
        detectors = load_content(config, outbox)
    except Exception as exc:
        outbox.send(("fatal", f"detectors could not be loaded: {exc}"))
        return
    serve(conn, config, detectors, outbox.send, tmpdir)


def forked_worker(
    conn: Connection,
    config: WorkerConfig,
    detectors: list[Detector],
    outbox: Outbox,
    tmpdir: str,
    lifeline: Connection,
) -> None:
    """A worker forked from the preload server: its content is already loaded (and shared
    with the server and the other workers until written to)."""
    exit_with_lifeline(lifeline)
    send = _sender(conn)
    for message in outbox.kept:  # what loading the content said, for this scan to hear
        send(message)
    outbox.kept = []
    outbox.send = send
    serve(conn, config, detectors, send, tmpdir)


def exit_with_lifeline(lifeline: Connection) -> None:
    """Exit as soon as the engine's process is gone (it holds the lifeline's other end),
    even while the main thread is stuck in a match."""

    def watch() -> None:
        with contextlib.suppress(OSError, ValueError):
            wait([lifeline])
        os._exit(3)

    threading.Thread(target=watch, name="aegis-worker-watch", daemon=True).start()


def serve(
    conn: Connection,
    config: WorkerConfig,
    detectors: list[Detector],
    send: Callable[[tuple[object, ...]], None],
    tmpdir: str,
) -> None:
    """Scan the batches the parent sends until told to stop, the parent leaves or the
    worker has been idle for ``config.idle_timeout``."""

    def warn(text: str) -> None:
        send(("warn", text))

    send(("ready",))
    model_told = _model_loaded(detectors)  # forked with it: nothing to tell

    def send_result(message: tuple[object, ...]) -> None:
        nonlocal model_told
        if not model_told and _model_loaded(detectors):
            send(("model",))  # before the file's result: the parent reads both
            model_told = True
        send(message)

    results = Results(send_result)
    scanner: FileScanner | None = None
    while True:
        try:
            if not conn.poll(config.idle_timeout):
                return
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] != "scan":
            return
        _, options, entries = message
        if options is not None or scanner is None:
            scanner = FileScanner(detectors, options, Path(tmpdir), warn)
        results.begin()
        try:
            ok = _scan_batch(scanner, entries, results)
        finally:
            results.end()
        if not ok:
            send(("retire",))
            return


class Results:
    """The results of a batch's files, sent a few at a time (see the module's docstring).

    The main thread calls :meth:`file_started` and :meth:`add` per file; a watching thread
    sends what is kept when a file is slow. Sending happens under one lock, so results leave
    in batch order whichever thread sends them."""

    def __init__(self, send: Callable[[tuple[object, ...]], None]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._kept: list[tuple[object, ...]] = []
        self._sent_at = 0.0
        self._file_since: float | None = None
        self._told_busy = False
        self._scanning = threading.Event()
        self._watcher: threading.Thread | None = None

    def begin(self) -> None:
        """A batch starts (the watching thread runs only while one does)."""
        self._sent_at = time.monotonic()
        if self._watcher is None:
            self._watcher = threading.Thread(
                target=self._watch, name="aegis-worker-results", daemon=True
            )
            self._watcher.start()
        self._scanning.set()

    def end(self) -> None:
        """The batch is over: everything kept is sent now."""
        self._scanning.clear()
        self._file_since = None
        self.flush()

    def file_started(self) -> None:
        self._file_since = time.monotonic()
        self._told_busy = False

    def add(self, message: tuple[object, ...]) -> None:
        """A file's result (the main thread, once the file is done)."""
        self._file_since = None
        now = time.monotonic()
        with self._lock:
            self._kept.append(message)
            if now - self._sent_at >= FLUSH_SECONDS:
                self._flush_locked(now, busy=False)

    def flush(self) -> None:
        with self._lock:
            if self._kept:
                self._flush_locked(time.monotonic(), busy=False)

    def tell(self, message: tuple[object, ...]) -> None:
        """Send a message that is not a file's result, after the results kept so far."""
        with self._lock:
            if self._kept:
                self._flush_locked(time.monotonic(), busy=False)
            self._send(message)

    def give_back(self, count: int) -> None:
        """Send what is kept, and hand the batch's last ``count`` files back unscanned."""
        with self._lock:
            self._flush_locked(time.monotonic(), busy=False, returned=count)

    def _flush_locked(self, now: float, *, busy: bool, returned: int = 0) -> None:
        kept, self._kept = self._kept, []
        self._sent_at = now
        # busy: no result is held back, so the parent knows the file the worker is on next
        self._send(("batch", kept, busy or FLUSH_SECONDS <= 0, returned))

    def _watch(self) -> None:
        while True:
            self._scanning.wait()
            time.sleep(SLOW_FILE_SECONDS)
            since = self._file_since
            if since is None or self._told_busy:
                continue
            now = time.monotonic()
            if now - since < SLOW_FILE_SECONDS:
                continue
            with self._lock:
                if self._file_since == since and not self._told_busy:
                    self._told_busy = True  # said once per slow file
                    self._flush_locked(now, busy=True)


def _scan_batch(scanner: FileScanner, entries: list[FileEntry], results: Results) -> bool:
    """Scan each file and keep its report for the parent; False after a file that ran out
    of memory (its report is sent before the function returns), or that needs the ML model
    this worker must not load itself (it is handed back unreported)."""
    from ..ml.detector import ModelWanted
    from ..results import Verdict
    from .workers import incomplete_report

    send = results.add
    started = time.monotonic()
    for i, entry in enumerate(entries):
        if i and time.monotonic() - started >= GIVE_BACK_SECONDS:
            results.give_back(len(entries) - i)
            return True
        results.file_started()
        try:
            report = scanner.scan_file(entry)
        except ModelWanted:  # forked before the server had the model: hand the file back
            results.tell(("model",))
            return False
        except MemoryError:
            cap = _memory_cap_mib()
            send(
                (
                    "report",
                    incomplete_report(
                        entry, f"memory limit: scanning needed more than the worker's {cap}"
                    ),
                )
            )
            return False
        except Exception as exc:  # a bug must cost one file, never the whole scan
            report = incomplete_report(entry, f"internal error: {exc!r}", Verdict.ERROR)
        if report is not None and report.verdict is Verdict.CLEAN and not report.objects:
            send(("ok", report.sha256, report.size))  # the common case, kept small
        else:
            send(("report", report))
    return True


def _memory_cap_mib() -> str:
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        return f"{soft // (1024 * 1024)} MiB" if soft != resource.RLIM_INFINITY else "memory"
    except (ImportError, ValueError, OSError):
        return "memory"
