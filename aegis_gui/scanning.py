"""On-demand scans from the GUI: one at a time, in a worker op, cancellable.

``Engine.scan`` runs in a QThreadPool op with a ``threading.Event`` for cancel. That thread
only walks the tree, answers unchanged files from the scan cache and hands the rest to the
engine's worker processes, where files are read, hashed, matched and unpacked: nothing
CPU-heavy runs on the GUI process's interpreter. Its callbacks go through the bridge
(progress thinned out). Each file that is not clean is decided and
recorded in the history on the scanning thread, then arrives here as a Detection. A second
op counts the files to scan, so the progress bar can show a fraction.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QObject, QThreadPool, Signal

from aegis_engine import Engine, FileReport, ScanProgress, ScanSummary
from aegis_engine.response import Mode
from aegis_engine.scanning.walk import count_files

from .bridge import EngineBridge
from .detection import Detection
from .ops import OpRunner

BACKGROUND_NICE = 10


def lower_thread_priority(nice: int = BACKGROUND_NICE) -> None:
    """Make the calling thread (and the threads it starts: Linux copies the nice value)
    yield the CPU to the GUI thread. The scan threads and the GUI share the GIL; the kernel
    wakes a nice-0 GUI thread first when it wants the GIL back."""
    if not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        if current < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)  # per thread on Linux
    except OSError:
        pass


class ScanService(QObject):
    """Runs one scan at a time. Signals carry the scan id first."""

    started = Signal(int, object, str)
    """(id, targets, kind): kind is ``quick``, ``full``, ``folder`` or ``scheduled``"""
    progress = Signal(int, object)
    counted = Signal(int, int)
    found = Signal(int, object)
    finished = Signal(int, object)
    failed = Signal(int, str)

    def __init__(
        self,
        engine: Engine,
        bridge: EngineBridge,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._engine = engine
        self._bridge = bridge
        # Scans get their own pool of low-priority threads (they never run other ops, so
        # their lowered priority sticks to scanning only).
        pool = QThreadPool(self)
        pool.setMaxThreadCount(2)
        self._runner = OpRunner(pool, self)
        self._ids = itertools.count(1)
        self.current: int | None = None
        self.kind = ""
        self.targets: list[str] = []
        self._cancel = threading.Event()
        self.last_summary: ScanSummary | None = None
        bridge.scan_progress.connect(self._on_progress)
        bridge.scan_report.connect(self._on_report)

    @property
    def running(self) -> bool:
        return self.current is not None

    def start(self, targets: Sequence[str | Path], kind: str) -> int | None:
        """Start a scan; None if one is running already."""
        if self.current is not None:
            return None
        scan_id = next(self._ids)
        self.current = scan_id
        self.kind = kind
        self.targets = [str(t) for t in targets]
        self._cancel = cancel = threading.Event()
        source = "scheduled" if kind == "scheduled" else "scan"
        decided: dict[int, Detection] = {}
        outcomes = self._engine.outcomes

        def decide(report: FileReport) -> None:  # in the scan, before the report is counted
            response = outcomes.respond(report, mode=Mode.DEFER, client="tray")
            decided[id(report)] = Detection(report, response.decision, source)

        def transform(report: FileReport) -> Detection:
            found = decided.pop(id(report), None)
            return found or Detection(report, outcomes.decide(report), source)

        on_report, on_progress = self._bridge.scan_callbacks(scan_id, transform)
        targets_now = list(self.targets)
        self.started.emit(scan_id, targets_now, kind)

        def scan() -> ScanSummary:
            lower_thread_priority()
            return self._engine.scan(
                targets_now,
                on_report=on_report,
                on_progress=on_progress,
                cancel=cancel,
                decide=decide,
            )

        def count() -> int:
            lower_thread_priority()
            return count_files(targets_now, stop=cancel.is_set)

        self._runner.run(
            scan,
            success=lambda summary: self._done(scan_id, summary),
            failure=lambda exc: self._failed(scan_id, exc),
            name="scan",
        )
        self._runner.run(
            count,
            success=lambda n: self._counted(scan_id, n),
            failure=lambda _exc: None,
            name="scan-count",
        )
        return scan_id

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, msecs: int = -1) -> bool:
        """Wait for the scan's ops to end (on quit, after cancel)."""
        return self._runner.wait(msecs)

    def _counted(self, scan_id: int, total: int) -> None:
        if scan_id == self.current:
            self.counted.emit(scan_id, total)

    def _on_progress(self, scan_id: int, progress: ScanProgress) -> None:
        if scan_id == self.current:
            self.progress.emit(scan_id, progress)

    def _on_report(self, scan_id: int, detection: object) -> None:
        self.found.emit(scan_id, detection)

    def _done(self, scan_id: int, summary: ScanSummary) -> None:
        self.current = None
        self._bridge.forget_scan(scan_id)
        self.last_summary = summary
        self.finished.emit(scan_id, summary)

    def _failed(self, scan_id: int, exc: BaseException) -> None:
        self.current = None
        self._bridge.forget_scan(scan_id)
        self.failed.emit(scan_id, str(exc) or type(exc).__name__)
