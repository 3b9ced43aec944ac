"""The status window: the app's main window (opened by clicking the tray icon, by starting
Aegis again, and instead of the tray where there is none)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..icons import TrayState, state_icon
from .common import heading, muted, setup_window

HEADLINES = {
    TrayState.PROTECTED: "You are protected",
    TrayState.PAUSED: "Real-time protection is off",
    TrayState.THREAT: "A threat needs your decision",
    TrayState.UPDATING: "Working…",
    TrayState.ERROR: "Real-time protection has a problem",
}


class StatusWindow(QWidget):
    """Buttons come out as signals named like the tray's menu entries."""

    quick_scan = Signal()
    full_scan = Signal()
    scan_folder = Signal()
    open_scan = Signal()
    open_alerts = Signal()
    open_quarantine = Signal()
    open_settings = Signal()
    pause_toggled = Signal()
    quit_requested = Signal()

    def __init__(self, *, standalone: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        setup_window(self, "Status")
        self.setWindowTitle("Aegis")
        self.setObjectName("status-window")
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        self.icon = QLabel()
        self.icon.setFixedSize(72, 72)
        top.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        words = QVBoxLayout()
        self.headline = heading("Starting…", 1.6)
        self.headline.setObjectName("status-headline")
        self.detail = muted("")
        self.detail.setObjectName("status-detail")
        words.addWidget(self.headline)
        words.addWidget(self.detail)
        top.addLayout(words, 1)
        lay.addLayout(top)
        grid = QGridLayout()
        self.buttons: dict[str, QPushButton] = {}
        rows = (
            (
                ("quick", "Quick scan", self.quick_scan, "The folders Aegis watches"),
                ("full", "Full scan", self.full_scan, "Your whole home folder"),
                ("folder", "Scan a folder…", self.scan_folder, "A folder you choose"),
                ("scan", "Scans and results", self.open_scan, "The running scan, last results"),
            ),
            (
                ("alerts", "Alerts", self.open_alerts, "Files waiting for your decision"),
                ("quarantine", "Quarantine", self.open_quarantine, "Files Aegis moved away"),
                ("settings", "Settings", self.open_settings, ""),
            ),
        )
        for r, row in enumerate(rows):
            for c, (key, label, signal, tip) in enumerate(row):
                b = QPushButton(label)
                b.setMinimumHeight(34)
                b.setObjectName(f"status-{key}")
                b.setToolTip(tip)
                b.clicked.connect(signal)
                grid.addWidget(b, r, c)
                self.buttons[key] = b
        lay.addLayout(grid)
        lay.addStretch(1)
        bottom = QHBoxLayout()
        self.pause_button = QPushButton("Pause protection")
        self.pause_button.setObjectName("status-pause")
        self.pause_button.clicked.connect(self.pause_toggled)
        bottom.addWidget(self.pause_button)
        bottom.addStretch(1)
        self.quit_button = QPushButton("Quit Aegis")
        self.quit_button.setVisible(standalone)
        self.quit_button.clicked.connect(self.quit_requested)
        bottom.addWidget(self.quit_button)
        lay.addLayout(bottom)
        self.set_status(TrayState.PAUSED, "Aegis is starting…", "Starting…")
        self.resize(620, self.sizeHint().height())

    def set_status(self, state: TrayState, detail: str, headline: str | None = None) -> None:
        self.icon.setPixmap(state_icon(state).pixmap(72, 72))
        self.headline.setText(headline or HEADLINES[state])
        self.detail.setText(detail)

    def set_open_alerts(self, count: int) -> None:
        self.buttons["alerts"].setText(f"Alerts ({count})" if count else "Alerts")

    def set_paused(self, paused: bool, available: bool = True) -> None:
        self.pause_button.setText("Resume protection" if paused else "Pause protection")
        self.pause_button.setEnabled(available)
