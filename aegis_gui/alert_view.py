"""Alerts, from detection to answer: prompts, the user's choice from any window or
notification, the policy's default on timeout, confirmations; and the alert windows."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QWidget

from aegis_engine import Engine

from .alerts import Alert, AlertCenter, AlertResponder
from .change_watch import ChangeWatch
from .detection import Detection
from .icons import icon_path
from .notifications import ALLOW, DETAILS, QUARANTINE, Notifier
from .ops import OpRunner

if TYPE_CHECKING:  # imported when first opened
    from .windows.alert_dialog import AlertDialog
    from .windows.alerts import AlertsWindow

ShowFn = Callable[[QWidget], object]


class AlertPresenter(QObject):
    """``alert_changed`` and ``item_quarantined`` let other views follow along."""

    def __init__(
        self,
        engine: Engine,
        runner: OpRunner,
        center: AlertCenter,
        responder: AlertResponder,
        notifier: Notifier,
        show: ShowFn,
        *,
        on_alert_changed: Callable[[Alert], None],
        on_vault_changed: Callable[[], None],
        show_vault: Callable[[], object],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._engine = engine
        self._runner = runner
        self._center = center
        self._responder = responder
        self._notifier = notifier
        self._show = show
        self._on_alert_changed = on_alert_changed
        self._on_vault_changed = on_vault_changed
        self._show_vault = show_vault
        self.window: AlertsWindow | None = None
        history = engine.paths.history_file
        self.watch = ChangeWatch(
            [history, history.with_name(history.name + "-wal")],
            alive=lambda: self.window is not None and self.window.isVisible(),
            parent=self,
        )
        self.watch.changed.connect(self.history_changed)
        self.dialogs: dict[str, AlertDialog] = {}
        center.changed.connect(self._changed)
        center.added.connect(self._changed)
        responder.finished.connect(self._answered)
        notifier.choice.connect(self.answer)
        notifier.expired.connect(self._expired)

    # -- the flow ------------------------------------------------------------------------------
    def on_detection(self, detection: object) -> None:
        """From real-time protection (via the bridge): a new alert and its prompt."""
        if not isinstance(detection, Detection):
            return
        alert = self._center.add(detection)
        if alert.detection is detection:  # new, not a repeat of an open alert
            self._notifier.prompt(alert)

    def answer(self, alert_id: str, choice: str) -> None:
        """The user's answer, from a notification or a window."""
        if choice == DETAILS:
            self.show_alert(alert_id)
            return
        self._notifier.settle(alert_id)
        if choice == QUARANTINE:
            self._responder.quarantine(alert_id, by_user=True)
        elif choice == ALLOW:
            self._responder.allow(alert_id)

    def _expired(self, alert_id: str) -> None:
        self._responder.apply_policy(
            alert_id, f"No answer within {self._notifier.prompt_timeout:g} s"
        )

    def _answered(self, alert_id: str, ok: bool, text: str) -> None:
        alert = self._center.get(alert_id)
        if alert is None:
            return
        if alert.detection.source in ("real-time", "process"):
            name = os.path.basename(alert.detection.path)
            title = f"Aegis: {name}" if ok else f"Aegis: could not act on {name}"
            icon = str(icon_path("shield-protected" if ok else "shield-error"))
            self._notifier.inform(title, text, warning=not ok, icon=icon)
        if alert.item_id:
            self._on_vault_changed()
        self.history_changed()

    def _changed(self, alert_id: str) -> None:
        alert = self._center.get(alert_id)
        if alert is None:
            return
        dialog = self.dialogs.get(alert_id)
        if dialog is not None:
            dialog.refresh()
        self._on_alert_changed(alert)
        if self.window is not None and self.window.isVisible():
            self.window.set_data(self._center.all())

    # -- windows -------------------------------------------------------------------------------
    def show_alert(self, alert_id: str) -> AlertDialog | None:
        alert = self._center.get(alert_id)
        if alert is None:
            return None
        dialog = self.dialogs.get(alert_id)
        if dialog is None:
            from .windows.alert_dialog import AlertDialog

            dialog = AlertDialog(alert, self._notifier.deadline_ms)
            dialog.choice.connect(self.answer)
            self.dialogs[alert_id] = dialog
        self._show(dialog)
        return dialog

    def _window(self) -> AlertsWindow:
        if self.window is None:
            from .windows.alerts import AlertsWindow

            w = AlertsWindow()
            w.choice.connect(self.answer)
            w.refresh_requested.connect(self.reload_history)
            w.show_quarantine.connect(self._show_vault)
            self.window = w
        return self.window

    def show(self) -> AlertsWindow:
        w = self._window()
        w.set_data(self._center.all())
        self.reload_history()
        self._show(w)
        self.watch.start()
        return w

    def history_changed(self) -> None:
        """The engine's state changed (a decision, a restore, another process): the window
        follows without Refresh."""
        if self.window is not None and self.window.isVisible():
            self.reload_history()

    def reload_history(self) -> None:
        w = self._window()
        self._runner.run(
            lambda: self._engine.history.events(),
            success=lambda events: w.set_data(self._center.all(), events),
            failure=lambda _exc: w.set_data(self._center.all(), []),
            name="history",
        )

    def close_all(self) -> None:
        for dialog in self.dialogs.values():
            dialog.close()
        if self.window is not None:
            self.window.close()
