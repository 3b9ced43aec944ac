"""The tray icon: a shield per state, a tooltip, and the menu.

Menu: status line, Scan a folder..., Quick scan, Full scan, Pause protection (15 min / 1 h / until
restart) or Resume protection, Alerts, Quarantine, Settings, Check for updates, Quit.
The icon's own click opens the status window.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal, SignalInstance
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from aegis_engine.status import aegis_version

from .icons import TrayState, state_icon

PAUSE_CHOICES: tuple[tuple[str, int | None], ...] = (
    ("For 15 minutes", 15 * 60),
    ("For 1 hour", 60 * 60),
    ("Until Aegis restarts", None),
)

STATE_WORDS = {
    TrayState.PROTECTED: "Protected",
    TrayState.PAUSED: "Protection paused",
    TrayState.THREAT: "Threat found",
    TrayState.UPDATING: "Updating",
    TrayState.ERROR: "Protection error",
}


class Tray(QObject):
    """Owns the QSystemTrayIcon and its menu; menu choices come out as signals."""

    scan_folder = Signal()
    quick_scan = Signal()
    full_scan = Signal()
    pause = Signal(object)
    """Seconds to pause, or None for "until restart"."""
    resume = Signal()
    open_alerts = Signal()
    open_quarantine = Signal()
    open_settings = Signal()
    open_status = Signal()
    check_updates = Signal()
    quit = Signal()
    message_clicked = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = TrayState.PAUSED
        self.icon = QSystemTrayIcon(state_icon(self.state), self)
        self.menu = QMenu()
        self.menu.setObjectName("aegis-tray-menu")
        self.menu.setToolTipsVisible(True)
        self.status_action = self._add("Aegis", self.open_status)
        self.menu.addSeparator()
        self._add("Scan a folder…", self.scan_folder)
        self._add("Quick scan", self.quick_scan).setToolTip("The folders Aegis watches")
        self._add("Full scan", self.full_scan).setToolTip("Your whole home folder")
        self.pause_menu = self.menu.addMenu("Pause protection")
        for label, seconds in PAUSE_CHOICES:
            act = self.pause_menu.addAction(label)
            act.triggered.connect(lambda _=False, s=seconds: self.pause.emit(s))
        self.resume_action = self._add("Resume protection", self.resume)
        self.resume_action.setVisible(False)
        self.menu.addSeparator()
        self.alerts_action = self._add("Alerts", self.open_alerts)
        self._add("Quarantine", self.open_quarantine)
        self._add("Settings", self.open_settings)
        self.updates_action = self._add("Check for updates", self.check_updates)
        self.menu.addSeparator()
        # The version, from the package metadata (aegis status adds the signature version).
        self.version_action = self.menu.addAction(f"Aegis {aegis_version()}")
        self.version_action.setEnabled(False)
        self._add("Quit", self.quit)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        self.icon.messageClicked.connect(self.message_clicked)
        self.set_state(TrayState.PAUSED, "Aegis is starting…")

    def _add(self, label: str, signal: SignalInstance) -> QAction:
        act = self.menu.addAction(label)
        act.triggered.connect(lambda _=False: signal.emit())
        return act

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (
            QSystemTrayIcon.ActivationReason.Trigger,
            QSystemTrayIcon.ActivationReason.DoubleClick,
        ):
            self.open_status.emit()

    def show(self) -> None:
        self.icon.show()

    def hide(self) -> None:
        self.icon.hide()

    def set_state(self, state: TrayState, detail: str) -> None:
        self.state = state
        self.icon.setIcon(state_icon(state))
        self.icon.setToolTip(f"Aegis — {STATE_WORDS[state]}\n{detail}")
        self.status_action.setText(f"Aegis: {STATE_WORDS[state]}")
        self.status_action.setIcon(state_icon(state))
        self.status_action.setToolTip(f"{detail}\nClick to open the status window.")

    def set_paused(self, paused: bool, *, can_pause: bool = True) -> None:
        """Show "Resume protection" instead of the pause submenu while paused."""
        self.pause_menu.menuAction().setVisible(not paused)
        self.pause_menu.setEnabled(can_pause)
        self.resume_action.setVisible(paused)

    def set_open_alerts(self, count: int) -> None:
        self.alerts_action.setText(f"Alerts ({count} waiting)" if count else "Alerts")

    def set_updating(self, busy: bool) -> None:
        self.updates_action.setEnabled(not busy)
        self.updates_action.setText("Checking for updates…" if busy else "Check for updates")
