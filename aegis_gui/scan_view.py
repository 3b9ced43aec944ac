"""The scan window's presenter: ScanService <-> ScanWindow, what quick and full scans cover,
and scheduled scans."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from aegis_engine import ScanProgress, ScanSummary

from . import memory
from .alerts import Alert, AlertCenter
from .detection import Detection
from .notifications import Notifier
from .preferences import Preferences
from .protection import default_folders
from .scanning import ScanService
from .schedule import next_run

if TYPE_CHECKING:
    from .windows.scan import ScanWindow  # imported when the window is first opened

ShowFn = Callable[[QWidget], object]
PickFolder = Callable[[QWidget], str]


def _pick_folder(parent: QWidget) -> str:
    return QFileDialog.getExistingDirectory(parent, "Scan which folder?")


def safe_default_folders() -> list[str]:
    try:
        return default_folders()
    except Exception:  # the monitor package is not needed to scan
        return []


class ScanPresenter(QObject):
    """``changed`` whenever a scan starts or ends (the tray state mentions it);
    ``choice(alert_id, choice)`` for answers given in the results list."""

    changed = Signal()
    choice = Signal(str, str)

    def __init__(
        self,
        scans: ScanService,
        alerts: AlertCenter,
        notifier: Notifier,
        show: ShowFn,
        *,
        pick_folder: PickFolder | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.scans = scans
        self._alerts = alerts
        self._notifier = notifier
        self._show = show
        self._pick = pick_folder or _pick_folder
        self.prefs = Preferences()
        self.next_scheduled: datetime | None = None
        self.window: ScanWindow | None = None
        self.queued: list[str] = []
        """Paths handed over while a scan was running (``aegis-tray --scan``): scanned next."""
        scans.started.connect(self._started)
        scans.progress.connect(self._progress)
        scans.counted.connect(lambda sid, n: self._window().scan_counted(sid, n))
        scans.found.connect(self._found)
        scans.finished.connect(self._finished)
        scans.failed.connect(self._failed)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.check_schedule)

    def start_schedule(self) -> None:
        self._timer.start(30_000)

    def stop(self) -> None:
        self._timer.stop()
        self.scans.cancel()

    def set_preferences(self, prefs: Preferences) -> None:
        self.prefs = prefs
        self.next_scheduled = next_run(prefs.schedule, datetime.now())
        self._describe_schedule()

    # -- window --------------------------------------------------------------------------------
    def _window(self) -> ScanWindow:
        if self.window is None:
            from .windows.scan import ScanWindow

            w = ScanWindow()
            w.start_requested.connect(self._requested)
            w.cancel_requested.connect(self.scans.cancel)
            w.choice.connect(self.choice)
            self.window = w
            self._describe_schedule()
        return self.window

    def show(self) -> ScanWindow:
        w = self._window()
        self._show(w)
        return w

    def alert_changed(self, alert: Alert) -> None:
        if self.window is not None:
            self.window.alert_changed(alert)

    def _describe_schedule(self) -> None:
        if self.window is None:
            return
        text = self.prefs.schedule.describe()
        if self.next_scheduled is not None:
            text += f"; next: {self.next_scheduled:%a %d %b %H:%M}"
        self.window.set_schedule(text + ". Change it in Settings ▸ Scheduled scans.")

    # -- starting ------------------------------------------------------------------------------
    def targets(self, kind: str) -> list[str]:
        if kind == "full":
            return [str(Path.home())]
        return list(self.prefs.folders) or safe_default_folders() or [str(Path.home())]

    def _requested(self, kind: str) -> None:
        if kind == "folder":
            self.scan_folder()
        else:
            self.start(kind)

    def scan_folder(self) -> None:
        folder = self._pick(self._window())
        if folder:
            self.start("folder", [folder])

    def scan_paths(self, paths: list[str]) -> None:
        """Show the scan window and scan ``paths``; while a scan runs, they wait for its end."""
        if not paths:
            return
        if self.scans.running:
            self.queued.extend(p for p in paths if p not in self.queued)
            self.show()
            return
        self.start("folder", list(paths))

    def _start_queued(self) -> None:
        if self.queued and not self.scans.running:
            paths, self.queued = self.queued, []
            self.start("folder", paths)

    def start(self, kind: str, targets: list[str] | None = None) -> int | None:
        """Start a scan (and show the window, unless it is a scheduled one); None when a
        scan is running already."""
        window = self._window()
        if kind not in ("scheduled", "catch-up"):  # background scans never steal focus
            self._show(window)
        if self.scans.running:
            return None
        chosen = targets or self.targets("full" if kind == "full" else "quick")
        return self.scans.start(chosen, kind)

    def check_schedule(self, now: datetime | None = None) -> None:
        now = now or datetime.now()
        if self.next_scheduled is not None and now >= self.next_scheduled:
            self.next_scheduled = next_run(self.prefs.schedule, now)
            self._describe_schedule()
            self.start("scheduled", self.targets(self.prefs.schedule.kind))

    # -- the service's signals -----------------------------------------------------------------
    def _started(self, scan_id: int, targets: list[str], kind: str) -> None:
        self._window().scan_started(scan_id, targets, kind)
        self.changed.emit()

    def _progress(self, scan_id: int, progress: ScanProgress) -> None:
        self._window().scan_progress(scan_id, progress)

    def _found(self, scan_id: int, detection: object) -> None:
        if not isinstance(detection, Detection):
            return
        if detection.decision.verdict.is_threat:
            self._window().scan_found(self._alerts.add(detection))
        else:  # incomplete or failed: listed in the results, not an alert
            self._window().scan_found(detection)

    def _finished(self, scan_id: int, summary: ScanSummary) -> None:
        QTimer.singleShot(1000, memory.trim)
        window = self._window()
        window.scan_finished(scan_id, summary)
        self.changed.emit()
        if self.queued:
            QTimer.singleShot(0, self._start_queued)
        background = self.scans.kind in ("scheduled", "catch-up")
        if not background and window.isVisible():
            return
        if summary.threats:
            self._notifier.inform(
                "Aegis: scan found threats",
                f"{summary.threats} threat(s) in {summary.files:,} files. Open Alerts.",
                warning=True,
            )
        elif summary.cancelled:
            pass
        elif self.scans.kind == "catch-up":
            self._notifier.inform(
                "Aegis: checked what changed during the pause",
                f"{summary.files:,} files written while protection was paused: all clean.",
            )
        else:
            self._notifier.inform("Aegis: scan finished", f"{summary.files:,} files, all clean.")

    def _failed(self, scan_id: int, message: str) -> None:
        self._window().scan_failed(scan_id, message)
        self.changed.emit()
        if self.queued:
            QTimer.singleShot(0, self._start_queued)
