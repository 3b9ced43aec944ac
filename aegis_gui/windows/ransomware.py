"""A ransomware incident: the shield suspended a process; the user kills or resumes it."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..format import show_path
from ..icons import TrayState, state_icon
from .common import heading, muted, setup_window


class RansomwareWindow(QWidget):
    """Emits ``choice(incident, "kill" | "resume")``."""

    choice = Signal(str, str)

    def __init__(self, event: object, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        setup_window(self, "Ransomware stopped")
        self.setObjectName("ransomware-window")
        self.incident = str(getattr(event, "incident", ""))
        processes = getattr(event, "processes", ())
        files = getattr(event, "files", ())
        lay = QVBoxLayout(self)
        icon = QLabel()
        icon.setPixmap(state_icon(TrayState.THREAT).pixmap(48, 48))
        lay.addWidget(icon)
        lay.addWidget(heading("A program was stopped while changing your files"))
        names = ", ".join(f"{p.name or '?'} (pid {p.pid})" for p in processes) or "unknown"
        lay.addWidget(
            muted(
                f"In {show_path(str(getattr(event, 'path', '')))}: {names} was suspended. "
                f"{getattr(event, 'explanation', '')}"
            )
        )
        total = int(getattr(event, "files_total", len(files)))
        lay.addWidget(QLabel(f"Files it touched ({total}); restore them from your backups:"))
        listing = QPlainTextEdit("\n".join(show_path(f) for f in files))
        listing.setReadOnly(True)
        lay.addWidget(listing, 1)
        buttons = QDialogButtonBox()
        self.kill_button = QPushButton("Stop it for good")
        self.resume_button = QPushButton("It is safe: let it continue")
        buttons.addButton(self.kill_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.resume_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.kill_button.clicked.connect(lambda: self._choose("kill"))
        self.resume_button.clicked.connect(lambda: self._choose("resume"))
        lay.addWidget(buttons)
        self.resize(600, 420)

    def _choose(self, what: str) -> None:
        self.kill_button.setEnabled(False)
        self.resume_button.setEnabled(False)
        self.choice.emit(self.incident, what)
