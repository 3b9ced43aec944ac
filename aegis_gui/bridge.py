"""The one bridge between the engine's plain callbacks and Qt signals.

The engine calls back on its own threads (scan workers, the monitor's dispatcher). Each
callback here only emits a signal; Qt queues it to the GUI thread, where widgets react. Scan
progress arrives once per file, so it is thinned to at most one signal per
``progress_interval`` (the last one of a scan always arrives through the scan's result).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from aegis_engine import FileReport, ScanProgress, Verdict
from aegis_engine.scanning.pipeline import ProgressCallback, ReportCallback


class EngineBridge(QObject):
    """Signals carry plain engine objects; every ``on_*`` method is safe from any thread."""

    scan_progress = Signal(int, object)
    """(scan id, ScanProgress)"""
    scan_report = Signal(int, object)
    """(scan id, what ``transform`` made of a FileReport that is not clean)"""
    detection = Signal(object)
    """a Detection from real-time protection, before any action"""
    monitor_event = Signal(object)
    """a MonitorEvent (status, error, ransomware, process...)"""
    warning = Signal(str)

    def __init__(self, progress_interval: float = 0.05, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._interval = progress_interval
        self._lock = threading.Lock()
        self._last_progress: dict[int, float] = {}

    # -- engine-side callbacks (any thread) ----------------------------------------------------
    def on_warning(self, message: str) -> None:
        self.warning.emit(message)

    def on_detection(self, detection: object) -> None:
        self.detection.emit(detection)

    def on_monitor_event(self, event: object) -> None:
        self.monitor_event.emit(event)

    def scan_callbacks(
        self, scan_id: int, transform: Callable[[FileReport], object] | None = None
    ) -> tuple[ReportCallback, ProgressCallback]:
        """Callbacks for ``Engine.scan(on_report=, on_progress=)`` of scan ``scan_id``.
        ``transform`` runs on the scanning thread (e.g. the decision and its history
        record) before the result crosses to the GUI thread."""

        def on_report(report: FileReport) -> None:
            if report.verdict is not Verdict.CLEAN:
                self.scan_report.emit(scan_id, transform(report) if transform else report)

        def on_progress(progress: ScanProgress) -> None:
            now = time.monotonic()
            with self._lock:
                if now - self._last_progress.get(scan_id, 0.0) < self._interval:
                    return
                self._last_progress[scan_id] = now
            self.scan_progress.emit(scan_id, progress)

        return on_report, on_progress

    def forget_scan(self, scan_id: int) -> None:
        with self._lock:
            self._last_progress.pop(scan_id, None)
