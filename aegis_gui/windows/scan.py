"""The scan window: choose a scan, watch it (progress bar, current file, counts), cancel it,
and act on what it found."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from aegis_engine import ScanProgress, ScanSummary

from ..alerts import Alert
from ..detection import Detection
from ..format import duration, human_bytes, show_path
from ..wording import plain_problem
from .common import ElidedLabel, heading, muted, setup_table, setup_window

KIND_WORDS = {
    "quick": "Quick scan",
    "full": "Full scan",
    "folder": "Folder scan",
    "scheduled": "Scheduled scan",
    "catch-up": "Check of files changed during the pause",
}


class ScanWindow(QWidget):
    """Emits ``start_requested(kind)`` (``quick``, ``full`` or ``folder``),
    ``cancel_requested()`` and ``choice(alert_id, choice)`` for a found file."""

    start_requested = Signal(str)
    cancel_requested = Signal()
    choice = Signal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        setup_window(self, "Scan")
        self.setObjectName("scan-window")
        self.scan_id: int | None = None
        self.total: int | None = None
        self.files = 0
        self.bytes = 0
        self.threats = 0
        self._started = 0.0
        self.found: list[Alert | Detection] = []
        self._targets_text = ""
        self.pages = QStackedWidget()
        self.pages.addWidget(self._choose_page())
        self.pages.addWidget(self._progress_page())
        lay = QVBoxLayout(self)
        lay.addWidget(self.pages)
        self._clock = QTimer(self)
        self._clock.timeout.connect(self._tick)
        self.resize(760, 520)

    # -- pages ---------------------------------------------------------------------------------
    def _choose_page(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        lay.setSpacing(14)
        lay.addWidget(heading("What do you want to scan?"))
        for kind, label, text in (
            (
                "quick",
                "Quick scan",
                "Downloads, Desktop, Documents and the temp folder (or your watched folders).",
            ),
            ("full", "Full scan", "Everything in your home folder. This can take a while."),
            ("folder", "Scan a folder…", "Choose a folder or drive to scan."),
        ):
            row = QHBoxLayout()
            button = QPushButton(label)
            button.setObjectName(f"scan-{kind}")
            button.setMinimumSize(180, 40)
            button.clicked.connect(lambda _=False, k=kind: self.start_requested.emit(k))
            row.addWidget(button)
            row.addSpacing(8)
            row.addWidget(muted(text), 1)
            lay.addLayout(row)
        self.last_result = muted("No scan yet in this session.")
        self.last_result.setObjectName("scan-last-result")
        lay.addSpacing(12)
        lay.addWidget(self.last_result)
        self.schedule_label = muted("")
        lay.addWidget(self.schedule_label)
        lay.addStretch(1)
        return page

    def set_schedule(self, text: str) -> None:
        self.schedule_label.setText(text)

    def _progress_page(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        self.title = heading("Scanning…")
        lay.addWidget(self.title)
        self.targets = ElidedLabel("")
        lay.addWidget(self.targets)
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        lay.addWidget(self.bar)
        self.current = ElidedLabel("")
        self.current.setObjectName("scan-current")
        lay.addWidget(self.current)
        grid = QGridLayout()
        self.count_labels: dict[str, QLabel] = {}
        for col, (key, label) in enumerate(
            (("files", "Files scanned"), ("data", "Data"), ("threats", "Threats"), ("time", "Time"))
        ):
            name = muted(label)
            value = QLabel("0")
            value.setObjectName(f"scan-count-{key}")
            font = value.font()
            font.setPointSizeF(font.pointSizeF() * 1.4)
            font.setBold(True)
            value.setFont(font)
            grid.addWidget(name, 0, col)
            grid.addWidget(value, 1, col)
            self.count_labels[key] = value
        lay.addLayout(grid)
        self.summary = QLabel("")
        self.summary.setObjectName("scan-summary")
        self.summary.setWordWrap(True)
        lay.addWidget(self.summary)
        self.results = QTableWidget()
        setup_table(
            self.results,
            ["File", "Verdict", "Found by", "Status", "Details"],
            stretch=0,
            widths={3: 120, 4: 200},
        )
        self.results.itemSelectionChanged.connect(self._update_buttons)
        lay.addWidget(self.results, 1)
        self.no_results = muted("Nothing found so far.")
        self.no_results.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.no_results)
        row = QHBoxLayout()
        self.quarantine_button = QPushButton("Quarantine")
        self.quarantine_button.setObjectName("scan-result-quarantine")
        self.allow_button = QPushButton("Allow")
        self.details_button = QPushButton("Details…")
        for b in (self.quarantine_button, self.allow_button, self.details_button):
            row.addWidget(b)
        row.addStretch(1)
        self.cancel_button = QPushButton("Cancel scan")
        self.cancel_button.setObjectName("scan-cancel")
        self.done_button = QPushButton("New scan")
        row.addWidget(self.cancel_button)
        row.addWidget(self.done_button)
        lay.addLayout(row)
        self.quarantine_button.clicked.connect(lambda: self._act("quarantine"))
        self.allow_button.clicked.connect(lambda: self._act("allow"))
        self.details_button.clicked.connect(lambda: self._act("details"))
        self.cancel_button.clicked.connect(self._cancel)
        self.done_button.clicked.connect(lambda: self.pages.setCurrentIndex(0))
        return page

    # -- the controller's calls ----------------------------------------------------------------
    def scan_started(self, scan_id: int, targets: list[str], kind: str) -> None:
        self.scan_id = scan_id
        self.total = None
        self.files = self.bytes = self.threats = 0
        self.found = []
        self._started = time.monotonic()
        self.title.setText(f"{KIND_WORDS.get(kind, 'Scan')} in progress")
        self._targets_text = ", ".join(show_path(t) for t in targets)
        self.targets.setText("Scanning: " + self._targets_text)
        self.bar.setRange(0, 0)  # busy until the files are counted
        self.bar.setTextVisible(True)
        self.current.setText("Starting…")
        self.summary.setText("")
        self.no_results.setText("Nothing found so far.")
        self.results.setRowCount(0)
        self.cancel_button.setEnabled(True)
        self.cancel_button.setVisible(True)
        self.done_button.setVisible(False)
        self._update_counts()
        self._update_buttons()
        self.pages.setCurrentIndex(1)
        self._clock.start(1000)

    def scan_counted(self, scan_id: int, total: int) -> None:
        if scan_id == self.scan_id and self.done_button.isHidden():
            self.total = max(total, 1)
            self.bar.setRange(0, self.total)
            self.bar.setValue(min(self.files, self.total))

    def scan_progress(self, scan_id: int, progress: ScanProgress) -> None:
        if scan_id != self.scan_id:
            return
        self.files, self.bytes, self.threats = progress.files, progress.bytes, progress.threats
        self.current.setText(show_path(progress.current))
        if self.total is not None:
            self.total = max(self.total, self.files)
            self.bar.setMaximum(self.total)
            self.bar.setValue(self.files)
        self._update_counts()

    def scan_found(self, found: Alert | Detection) -> None:
        """A threat (as its Alert) or a file that could not be scanned completely."""
        self.found.append(found)
        self._fill_results()

    def alert_changed(self, alert: Alert) -> None:
        if any(isinstance(a, Alert) and a.id == alert.id for a in self.found):
            self._fill_results()
            self._title_after_answers()

    def _title_after_answers(self) -> None:
        """A finished scan's "Threats found" turns into "Threats handled" once none waits."""
        alerts = [a for a in self.found if isinstance(a, Alert)]
        finished = self.scan_id is None and self.title.text() == "Threats found"
        if finished and alerts and not any(a.open for a in alerts):
            self.title.setText("Threats handled")
            self.summary.setText(
                f"{len(alerts)} threat(s) found; nothing is waiting for you any more."
            )

    def scan_finished(self, scan_id: int, summary: ScanSummary) -> None:
        if scan_id != self.scan_id:
            return
        self._clock.stop()
        self.files, self.bytes = summary.files, summary.bytes
        self.threats = summary.threats
        if summary.cancelled and self.total:
            self.bar.setRange(0, self.total)  # where it stopped, e.g. 1,800 of 49,634
            self.bar.setValue(min(summary.files, self.total))
        elif summary.cancelled:
            self.bar.setRange(0, 1)
            self.bar.setValue(0)
            self.bar.setTextVisible(False)  # no total counted: no "0%"
        else:
            self.bar.setRange(0, 1)
            self.bar.setValue(1)
        self.current.setText("")
        self.no_results.setText("Nothing found.")
        self.count_labels["time"].setText(duration(summary.seconds))
        self._update_counts(elapsed=summary.seconds)
        if summary.cancelled:
            head = "Scan cancelled"
            text = f"Cancelled after {summary.files:,} files."
        elif summary.threats:
            head = "Threats found"
            text = (
                f"{summary.threats} threat(s) in {summary.files:,} files. Choose what to do below."
            )
        else:
            head = "No threats found"
            text = f"{summary.files:,} files scanned, nothing found."
        problems = summary.incomplete + summary.errors
        if problems:
            text += f" {problems} file(s) could not be scanned completely."
        self.title.setText(head)
        self.targets.setText("Scanned: " + self._targets_text)
        self.summary.setText(text)
        self.last_result.setText(f"Last scan: {head.lower()} — {text}")
        self.cancel_button.setVisible(False)
        self.done_button.setVisible(True)
        self.scan_id = None
        self._title_after_answers()

    def scan_failed(self, scan_id: int, message: str) -> None:
        if scan_id != self.scan_id:
            return
        self._clock.stop()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.title.setText("The scan failed")
        self.summary.setText(message)
        self.cancel_button.setVisible(False)
        self.done_button.setVisible(True)
        self.scan_id = None

    # -- inside --------------------------------------------------------------------------------
    def _cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.current.setText("Cancelling…")
        self.cancel_requested.emit()

    def _tick(self) -> None:
        self._update_counts()

    def _update_counts(self, elapsed: float | None = None) -> None:
        self.count_labels["files"].setText(
            f"{self.files:,}" + (f" of {self.total:,}" if self.total else "")
        )
        self.count_labels["data"].setText(human_bytes(self.bytes))
        self.count_labels["threats"].setText(str(self.threats))
        if elapsed is None and self.scan_id is not None:
            elapsed = time.monotonic() - self._started
        if elapsed is not None:
            self.count_labels["time"].setText(duration(elapsed))

    def _fill_results(self) -> None:
        self.results.setRowCount(len(self.found))
        for i, found in enumerate(self.found):
            det: Detection = found.detection if isinstance(found, Alert) else found
            if isinstance(found, Alert):
                status = found.state.label
                why = whole = found.message or status
            else:
                problems = [p for d in det.decision.decisions for p in d.problems]
                status = "Not fully scanned"
                why = "; ".join(plain_problem(p, detail=False) for p in problems) or status
                whole = "; ".join(plain_problem(p) for p in problems)
            cells = [
                show_path(det.path),
                det.decision.verdict.value,
                ", ".join(det.names),
                status,
                why if why != status else "",
            ]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(whole if col == 4 and text else text)  # the limit, in full
                self.results.setItem(i, col, item)
        self.results.setVisible(bool(self.found))
        self.no_results.setVisible(not self.found)
        self._update_buttons()

    def _selected_alert(self) -> Alert | None:
        rows = self.results.selectionModel().selectedRows()
        if not rows:
            return None
        idx = rows[0].row()
        found = self.found[idx] if 0 <= idx < len(self.found) else None
        return found if isinstance(found, Alert) else None

    def _update_buttons(self) -> None:
        alert = self._selected_alert()
        actionable = alert is not None and alert.open
        self.quarantine_button.setEnabled(actionable)
        self.allow_button.setEnabled(actionable)
        self.details_button.setEnabled(alert is not None)

    def _act(self, what: str) -> None:
        alert = self._selected_alert()
        if alert is not None:
            self.choice.emit(alert.id, what)
