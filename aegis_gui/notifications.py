"""Detection prompts: desktop notifications with Quarantine / Allow / Details, or fallbacks.

Three ways, chosen at start:

``dbus``    ``org.freedesktop.Notifications`` with actions (:mod:`.dbus_notify`); Quarantine
            is the ``default`` action (clicking the notification itself quarantines).
``tray``    no notification daemon with actions: a tray message; clicking it opens the alert
            window, which has the same buttons.
``window``  no tray either: the alert window opens at once.

Every prompt has a deadline: when nobody answers within ``prompt_timeout`` seconds,
:attr:`Notifier.expired` fires and the policy's default applies. The alert window, opened
by Details, shows how long is left.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QSystemTrayIcon

from .alerts import Alert
from .dbus_notify import FreedesktopNotifications, NotificationError
from .ops import OpRunner

log = logging.getLogger(__name__)

QUARANTINE = "quarantine"
ALLOW = "allow"
DETAILS = "details"

_KEYS = {"default": QUARANTINE, "quarantine": QUARANTINE, "allow": ALLOW, "details": DETAILS}
PROMPT_ACTIONS = (("default", "Quarantine"), ("allow", "Allow"), ("details", "Details"))
OFFER_KEY = "offer"
"""The action key of an :meth:`Notifier.offer` button (``default`` does the same)."""

TrayGetter = Callable[[], QSystemTrayIcon | None]


def prompt_text(alert: Alert) -> tuple[str, str]:
    """Title and body of a detection prompt."""
    det = alert.detection
    verdict = det.decision.verdict.value
    name = os.path.basename(det.path) or det.path
    title = f"Aegis: {verdict} file found"
    names = ", ".join(det.names[:3]) or verdict
    body = f"{name}\n{names}\nin {os.path.dirname(det.path)}"
    return title, body


PROBE_RETRY_S = (1, 15, 60)
"""Seconds before asking an unanswering notification service again (then: the fallback)."""


class Notifier(QObject):
    """Shows prompts and reports the user's choice as ``choice(alert_id, choice)``."""

    choice = Signal(str, str)
    """(alert id, ``quarantine`` | ``allow`` | ``details``)"""
    expired = Signal(str)
    """An alert's prompt was not answered in time."""
    mode_changed = Signal(str)

    _dbus_action = Signal(int, str)  # emitted on the listener thread, delivered queued
    _dbus_closed = Signal(int, int)

    def __init__(
        self,
        runner: OpRunner,
        tray: TrayGetter,
        *,
        backend: FreedesktopNotifications | None,
        prompt_timeout: float = 120.0,
        icon: str = "",
        info_icon: str = "",
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._info_icon = info_icon or icon
        self._runner = runner
        self._tray = tray
        self._backend = backend
        self.prompt_timeout = prompt_timeout
        self._icon = icon
        self.mode = "starting"
        self._probe_attempts = 0
        self._queued: list[Alert] = []
        self._by_nid: dict[int, str] = {}
        self._timers: dict[str, QTimer] = {}
        self._last_tray_alert: str | None = None
        self._offers: dict[int, Callable[[], None]] = {}
        """Open notifications with one button (e.g. "Quick scan") and what it does."""
        self._last_tray_offer: Callable[[], None] | None = None
        self._dbus_action.connect(self._on_dbus_action, Qt.ConnectionType.QueuedConnection)
        self._dbus_closed.connect(self._on_dbus_closed, Qt.ConnectionType.QueuedConnection)

    # -- start and stop ------------------------------------------------------------------------
    def start(self) -> None:
        backend = self._backend
        if backend is None:
            self._set_mode(self._fallback_mode())
            return

        def probe() -> bool:
            # capabilities() raises when the daemon does not answer (retried below); a daemon
            # that answers without "actions" cannot carry the Quarantine button (no retry)
            if "actions" not in backend.capabilities():
                return False
            backend.listen(self._dbus_action.emit, self._dbus_closed.emit)
            return True

        self._runner.run(
            probe,
            success=lambda ok: self._set_mode("dbus" if ok else self._fallback_mode()),
            failure=self._probe_failed,
            name="notifications-probe",
        )

    def _probe_failed(self, exc: BaseException) -> None:
        """The notification service did not answer (a busy or slow session bus at login):
        ask again later instead of giving up on it for the whole session. Prompts meanwhile
        wait for the first retry, then use the fallback until the service answers."""
        attempt = self._probe_attempts
        self._probe_attempts += 1
        if attempt >= len(PROBE_RETRY_S):
            log.warning("desktop notifications unavailable, using the fallback: %s", exc)
            if self.mode == "starting":
                self._set_mode(self._fallback_mode())
            return
        log.warning(
            "desktop notifications did not answer (%s); asking again in %d s",
            exc,
            PROBE_RETRY_S[attempt],
        )
        if attempt >= 1 and self.mode == "starting":
            self._set_mode(self._fallback_mode())  # no longer hold prompts back
        QTimer.singleShot(PROBE_RETRY_S[attempt] * 1000, self._retry_probe)

    def _retry_probe(self) -> None:
        if self._backend is not None and self.mode != "dbus":
            self.start()

    def _fallback_mode(self) -> str:
        tray = self._tray()
        if tray is not None and tray.isVisible() and tray.supportsMessages():
            return "tray"
        return "window"

    def _set_mode(self, mode: str) -> None:
        self.mode = mode
        self.mode_changed.emit(mode)
        queued, self._queued = self._queued, []
        for alert in queued:
            self._show(alert)

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.stop()
        self._timers.clear()
        if self._backend is not None:
            self._backend.stop()

    # -- prompts -------------------------------------------------------------------------------
    def prompt(self, alert: Alert) -> None:
        """Ask about ``alert``; the deadline starts now."""
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.timeout.connect(lambda aid=alert.id: self._expire(aid))
        timer.start(int(self.prompt_timeout * 1000))
        self._timers[alert.id] = timer
        if self.mode == "starting":
            self._queued.append(alert)
        else:
            self._show(alert)

    def deadline_ms(self, alert_id: str) -> int | None:
        """Milliseconds until the policy applies to ``alert_id`` (None: no deadline)."""
        timer = self._timers.get(alert_id)
        return timer.remainingTime() if timer is not None and timer.isActive() else None

    def settle(self, alert_id: str) -> None:
        """The alert was answered (or taken in hand): no deadline, no open notification."""
        timer = self._timers.pop(alert_id, None)
        if timer is not None:
            timer.stop()
            timer.deleteLater()
        for nid, aid in list(self._by_nid.items()):
            if aid == alert_id:
                del self._by_nid[nid]
                self._close_notification(nid)

    def _expire(self, alert_id: str) -> None:
        self.settle(alert_id)
        self.expired.emit(alert_id)

    def _show(self, alert: Alert) -> None:
        title, body = prompt_text(alert)
        if self.mode == "dbus" and self._backend is not None:
            backend = self._backend
            timeout_ms = int(self.prompt_timeout * 1000)
            self._runner.run(
                lambda: backend.notify(
                    title,
                    body,
                    PROMPT_ACTIONS,
                    icon=self._icon,
                    timeout_ms=timeout_ms,
                    urgency=2,
                ),
                success=functools.partial(self._remember, alert_id=alert.id),
                failure=functools.partial(self._dbus_failed, alert),
                name="notify",
            )
            return
        tray = self._tray()
        if self.mode == "tray" and tray is not None:
            self._last_tray_alert = alert.id
            self._last_tray_offer = None
            tray.showMessage(
                title,
                body + "\nClick to choose: Quarantine, Allow or Details.",
                QSystemTrayIcon.MessageIcon.Warning,
                int(self.prompt_timeout * 1000),
            )
            return
        self.choice.emit(alert.id, DETAILS)

    def _remember(self, nid: int, alert_id: str) -> None:
        if alert_id in self._timers:
            self._by_nid[nid] = alert_id
        else:  # answered (e.g. in the window) while the notification was on its way
            self._close_notification(nid)

    def _dbus_failed(self, alert: Alert, exc: BaseException) -> None:
        log.warning("desktop notification failed (%s); using the fallback", exc)
        self._set_mode(self._fallback_mode())
        self._show(alert)

    def _close_notification(self, nid: int) -> None:
        backend = self._backend
        if backend is not None and self.mode == "dbus":
            self._runner.run(
                lambda: backend.close_notification(nid),
                failure=lambda _exc: None,
                name="close-notification",
            )

    @Slot(int, str)
    def _on_dbus_action(self, nid: int, key: str) -> None:
        act = self._offers.pop(nid, None)
        if act is not None:
            if key in ("default", OFFER_KEY):
                act()
            return
        alert_id = self._by_nid.get(nid)
        if alert_id is None:
            return
        choice = _KEYS.get(key)
        if choice is None:
            return
        if choice == DETAILS:
            self._by_nid.pop(nid, None)  # the window shows the countdown; the deadline runs
        else:
            self.settle(alert_id)
        self.choice.emit(alert_id, choice)

    @Slot(int, int)
    def _on_dbus_closed(self, nid: int, _reason: int) -> None:
        # Dismissed or expired on screen: the deadline still runs (the policy then applies).
        self._by_nid.pop(nid, None)
        self._offers.pop(nid, None)

    def tray_message_clicked(self) -> None:
        if self._last_tray_offer is not None:
            act, self._last_tray_offer = self._last_tray_offer, None
            act()
        elif self._last_tray_alert is not None:
            alert_id, self._last_tray_alert = self._last_tray_alert, None
            self.choice.emit(alert_id, DETAILS)

    # -- plain information ---------------------------------------------------------------------
    def inform(self, title: str, body: str, *, warning: bool = False, icon: str = "") -> None:
        """A notification without buttons (confirmations, scan results): the threat icon
        only with ``warning``, else the app's own."""
        if self.mode == "dbus" and self._backend is not None:
            backend = self._backend
            shown = icon or (self._icon if warning else self._info_icon)

            def send() -> int:
                return backend.notify(title, body, (), icon=shown, timeout_ms=8000)

            self._runner.run(send, failure=lambda e: log.warning("notify failed: %s", e))
            return
        tray = self._tray()
        if tray is not None and tray.isVisible() and tray.supportsMessages():
            kind = (
                QSystemTrayIcon.MessageIcon.Warning
                if warning
                else QSystemTrayIcon.MessageIcon.Information
            )
            tray.showMessage(title, body, kind, 8000)

    def offer(
        self, title: str, body: str, label: str, act: Callable[[], None], *, warning: bool = False
    ) -> None:
        """A notification with one button, ``label`` (e.g. "Quick scan"): pressing it, or
        clicking the notification, calls ``act`` on the GUI thread. In a tray message,
        clicking the message does it; without either, nothing is shown."""
        if self.mode == "dbus" and self._backend is not None:
            backend = self._backend
            shown = self._icon if warning else self._info_icon
            actions = (("default", label), (OFFER_KEY, label))

            def send() -> int:
                return backend.notify(title, body, actions, icon=shown, timeout_ms=0)

            def sent(nid: int) -> None:
                self._offers[nid] = act

            self._runner.run(
                send, success=sent, failure=lambda e: log.warning("notify failed: %s", e)
            )
            return
        tray = self._tray()
        if tray is not None and tray.isVisible() and tray.supportsMessages():
            self._last_tray_offer = act
            self._last_tray_alert = None
            kind = (
                QSystemTrayIcon.MessageIcon.Warning
                if warning
                else QSystemTrayIcon.MessageIcon.Information
            )
            tray.showMessage(title, f"{body}\nClick here: {label}.", kind, 30_000)


__all__ = [
    "ALLOW",
    "DETAILS",
    "OFFER_KEY",
    "QUARANTINE",
    "NotificationError",
    "Notifier",
    "prompt_text",
]
