"""One alert: the file, the verdict and the decision engine's explanation, with the same
buttons as the notification (Quarantine, Allow) and the time left before the policy's
default applies."""

from __future__ import annotations

import os
from collections.abc import Callable

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from aegis_engine.decision import Action

from ..alerts import Alert, AlertState
from ..format import duration, human_bytes, local_time, show_path
from ..icons import TrayState, state_icon
from .common import ElidedLabel, heading, muted, setup_window

DeadlineFn = Callable[[str], int | None]


class AlertDialog(QWidget):
    """Emits ``choice(alert_id, "quarantine" | "allow")``."""

    choice = Signal(str, str)

    def __init__(
        self, alert: Alert, deadline_ms: DeadlineFn, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        setup_window(self, "Alert")
        self.setObjectName("alert-dialog")
        self.alert = alert
        self._deadline = deadline_ms
        det = alert.detection
        lay = QVBoxLayout(self)
        top = QLabel()
        top.setPixmap(state_icon(TrayState.THREAT).pixmap(48, 48))
        self.title = heading(
            f"{det.decision.verdict.value.capitalize()} file: {os.path.basename(det.path)}"
        )
        self.title.setWordWrap(True)
        lay.addWidget(top)
        lay.addWidget(self.title)
        form = QFormLayout()
        self.path = ElidedLabel(show_path(det.path))
        form.addRow("File", self.path)
        form.addRow("Found by", QLabel(", ".join(det.names) or det.decision.verdict.value))
        form.addRow("Size", QLabel(human_bytes(det.report.size)))
        form.addRow("SHA-256", ElidedLabel(det.report.sha256 or "unknown"))
        form.addRow("Found", QLabel(f"{local_time(det.time)} ({det.source})"))
        lay.addLayout(form)
        lay.addWidget(QLabel("Why (the decision engine's explanation):"))
        self.explanation = QPlainTextEdit("\n".join(det.decision.explanation))
        self.explanation.setReadOnly(True)
        self.explanation.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.explanation.setMinimumHeight(110)
        lay.addWidget(self.explanation, 1)
        self.state = muted("")
        lay.addWidget(self.state)
        buttons = QDialogButtonBox()
        self.quarantine_button = QPushButton("Quarantine")
        self.quarantine_button.setObjectName("alert-quarantine")
        self.allow_button = QPushButton("Allow")
        self.allow_button.setObjectName("alert-allow")
        self.close_button = QPushButton("Close")
        buttons.addButton(self.quarantine_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.allow_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.close_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.quarantine_button.setDefault(True)
        self.quarantine_button.clicked.connect(lambda: self.choice.emit(alert.id, "quarantine"))
        self.allow_button.clicked.connect(lambda: self.choice.emit(alert.id, "allow"))
        self.close_button.clicked.connect(self.close)
        lay.addWidget(buttons)
        self._tick = QTimer(self)
        self._tick.timeout.connect(self.refresh)
        self._tick.start(1000)
        self.refresh()
        self.resize(560, 460)

    def refresh(self) -> None:
        alert = self.alert
        actionable = alert.state in (AlertState.PENDING, AlertState.FAILED)
        self.quarantine_button.setEnabled(actionable)
        self.allow_button.setEnabled(actionable and bool(alert.detection.report.sha256))
        if alert.state is AlertState.PENDING:
            left = self._deadline(alert.id)
            default = (
                "quarantine it"
                if alert.detection.policy_action is Action.QUARANTINE
                else "leave it in place and keep the alert"
            )
            if left is not None:
                self.state.setText(
                    f"If you do not choose, Aegis will {default} in {duration(left / 1000)}."
                )
            else:
                self.state.setText("Choose Quarantine to move it into the encrypted quarantine.")
        else:
            self.state.setText(f"{alert.state.label}. {alert.message}".strip())
