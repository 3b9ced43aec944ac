"""Files written while real-time protection was paused (or switched off in Settings) are
checked when it runs again.

When protection pauses or is switched off, the moment is recorded in
``<state_dir>/protection-paused.json`` (so a pause "until restart", a quit or a crash is caught
up at the next start too). When protection
runs again, the watched folders are walked in a worker op for files changed since then, and
those files are scanned by the one scan service (the engine's scan, its outcome service and
the alerts), without opening the scan window. What cannot be checked is said plainly, in a
notification whose "Quick scan" button starts that scan (when it ends uncancelled, the
watched folders have been checked, and the pause's record goes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from aegis_engine.atomic import atomic_write
from aegis_engine.scanning.changed import ChangedFiles, files_changed_since

from .notifications import Notifier
from .ops import OpRunner
from .protection import Protection, Status
from .scan_view import ScanPresenter

log = logging.getLogger(__name__)

KIND = "catch-up"
MARGIN_S = 2.0
"""Recorded a little before the pause: the monitor stops asynchronously."""


class PauseCatchUp(QObject):
    """``checking(paths)`` when the catch-up scan of the changed files starts."""

    checking = Signal(object)

    def __init__(
        self,
        protection: Protection,
        scans: ScanPresenter,
        runner: OpRunner,
        notifier: Notifier,
        state_file: Path,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._protection = protection
        self._scans = scans
        self._runner = runner
        self._notifier = notifier
        self._file = state_file
        self._since: float | None = None
        self._pending: list[str] | None = None
        """Changed files waiting for the scan that is running to end."""
        self._busy = False
        """From the walk until the catch-up scan ended (or could not run)."""
        self._scan_id: int | None = None
        self._offered_scan: int | None = None
        """The Quick scan started from the "were not checked" notification."""
        protection.changed.connect(self._protection_changed)
        scans.scans.finished.connect(self._scan_finished)
        scans.scans.failed.connect(self._scan_failed)

    # -- the record ----------------------------------------------------------------------------
    def paused_since(self) -> float | None:
        try:
            value = json.loads(self._file.read_bytes()).get("paused_since")
        except (OSError, ValueError, AttributeError):
            return None
        return float(value) if isinstance(value, int | float) else None

    def _record(self, since: float) -> None:
        try:
            atomic_write(self._file, json.dumps({"paused_since": since}).encode())
        except OSError as exc:  # the catch-up still happens in this session
            log.warning("cannot record the pause: %s", exc)
        self._since = since

    def _clear(self) -> None:
        self._since = None
        with contextlib.suppress(FileNotFoundError, OSError):
            self._file.unlink()

    # -- flow ----------------------------------------------------------------------------------
    def _protection_changed(self) -> None:
        status = self._protection.status
        if status in (Status.PAUSED, Status.OFF):  # paused, or switched off in Settings
            if self._since is None:
                self._since = self.paused_since()
            if self._since is None:
                self._record(time.time() - MARGIN_S)
        elif status is Status.RUNNING:
            since = self._since if self._since is not None else self.paused_since()
            if since is not None and not self._busy:
                self._look(since, list(self._protection.folders))

    def _look(self, since: float, folders: list[str]) -> None:
        self._busy = True

        def found(changed: ChangedFiles) -> None:
            if changed.truncated:
                self._start(folders)  # too many: the folders themselves
            elif changed.paths:
                self._start(changed.paths)
            else:
                self._done()

        def failed(exc: BaseException) -> None:
            self._not_checked(str(exc) or type(exc).__name__)

        self._runner.run(
            lambda: files_changed_since(folders, since),
            success=found,
            failure=failed,
            name="pause-catch-up",
        )

    def _start(self, paths: list[str]) -> None:
        if self._scans.scans.running:  # after the scan that is running now
            self._pending = paths
            return
        self._pending = None
        self._scan_id = self._scans.start(KIND, paths)
        if self._scan_id is None:
            self._not_checked("another scan is running")
            return
        self.checking.emit(list(paths))

    def _scan_finished(self, scan_id: int, summary: object) -> None:
        if scan_id == self._offered_scan:
            self._offered_scan = None
            if not getattr(summary, "cancelled", False) and not self._busy:
                self._done()
        if scan_id == self._scan_id:
            self._scan_id = None
            if getattr(summary, "cancelled", False):
                self._not_checked("The check was cancelled")
            else:
                self._done()
        elif self._pending is not None:
            self._start(self._pending)

    def _scan_failed(self, scan_id: int, message: str) -> None:
        if scan_id == self._scan_id:
            self._scan_id = None
            self._not_checked(f"The check failed: {message}")
        elif self._pending is not None:
            self._start(self._pending)

    def _done(self) -> None:
        self._busy = False
        if self._protection.status is Status.RUNNING:  # not paused again meanwhile
            self._clear()

    def _not_checked(self, why: str) -> None:
        self._busy = False  # the record stays: the next start tries again
        self._notifier.offer(
            "Aegis: files changed while protection was paused or off were not checked",
            f"{why}. Run a Quick scan to check them.",
            "Quick scan",
            self.quick_scan,
            warning=True,
        )

    def quick_scan(self) -> None:
        """The notification's button: a Quick scan of the watched folders, in the scan
        window (the person asked for it)."""
        self._offered_scan = self._scans.start("quick")


__all__ = ["KIND", "PauseCatchUp"]
