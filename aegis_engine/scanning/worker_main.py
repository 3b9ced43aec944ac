"""What runs inside a scan worker process (see ``workers.py`` for the parent's side).

Messages to the parent: ``("ready",)`` once the detectors are loaded, ``("report", report)``
per file in batch order, ``("warn", text)``, ``("retire",)`` after a file that hit the memory
cap (the parent starts a fresh worker), ``("fatal", text)`` if the detectors cannot be built.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from ..detectors.base import Detector, ScanObject
from ..detectors.registry import DetectorContext, load_detectors
from .scanner import FileScanner
from .walk import FileEntry

if TYPE_CHECKING:
    from .worker_pool import WorkerConfig

PARENT_CHECK_SECONDS = 1.0


def _limit_memory(limit: int) -> None:
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
    parsed, the model opened), so the first file's time limit is spent on the file."""
    probe = ScanObject(path="<warm-up>", name="warm-up", data=b"", size=0, hashes={})
    for det in detectors:
        try:
            det.scan(probe)
        except Exception:  # the real files report whatever this detector says
            continue


def worker_main(conn: Connection, config: WorkerConfig, tmpdir: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle
    _limit_memory(config.memory_limit)
    _exit_with_parent()
    send_lock = threading.Lock()

    def send(message: tuple[object, ...]) -> None:
        with send_lock:
            conn.send(message)

    def warn(text: str) -> None:
        send(("warn", text))

    def fault(text: str) -> None:
        send(("fault", text))

    try:
        ctx = DetectorContext(config.paths, config.content, config.limits, warn, fault=fault)
        detectors = load_detectors(ctx, plugins=config.plugins, extra=config.extra_factories)
        _warm_up(detectors)
    except Exception as exc:
        send(("fatal", f"detectors could not be loaded: {exc}"))
        return
    send(("ready",))
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
        if not _scan_batch(scanner, entries, send):
            send(("retire",))
            return


def _scan_batch(
    scanner: FileScanner, entries: list[FileEntry], send: Callable[[tuple[object, ...]], None]
) -> bool:
    """Scan each file and send its report; False after a file that ran out of memory."""
    from ..results import Verdict
    from .workers import incomplete_report

    for entry in entries:
        try:
            report = scanner.scan_file(entry)
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
