"""Desktop notifications over D-Bus (``org.freedesktop.Notifications``) with jeepney.

No Qt here: :meth:`FreedesktopNotifications.notify` is a blocking D-Bus call (run it from a
worker op), and :meth:`listen` reads ``ActionInvoked`` / ``NotificationClosed`` on its own
thread (``aegis-dbus-notify``, not a daemon; :meth:`stop` joins it) and hands them to plain
callbacks, which the GUI's bridge turns into Qt signals.

The spec: https://specifications.freedesktop.org/notification-spec/ - ``Notify`` has the
signature ``susssasa{sv}i``; the action key ``default`` is the one invoked by clicking the
notification itself.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from jeepney import DBusAddress, MessageType, new_method_call
from jeepney.bus_messages import MatchRule, message_bus
from jeepney.io.threading import DBusConnection, DBusRouter, open_dbus_connection
from jeepney.low_level import HeaderFields, Message

BUS_NAME = "org.freedesktop.Notifications"
OBJECT_PATH = "/org/freedesktop/Notifications"
INTERFACE = "org.freedesktop.Notifications"

log = logging.getLogger(__name__)

ActionCallback = Callable[[int, str], None]
ClosedCallback = Callable[[int, int], None]

CLOSED_EXPIRED = 1
CLOSED_DISMISSED = 2
CLOSED_BY_CALL = 3


class NotificationError(Exception):
    """The notification service is missing or failed."""


class FreedesktopNotifications:
    """A client of the session bus's notification daemon.

    One connection carries the calls and receives the signals: some daemons (dunst among
    them) send ``ActionInvoked`` only to the connection that created the notification.
    """

    def __init__(
        self,
        app_name: str = "Aegis",
        *,
        call_timeout: float = 5.0,
        connect: Callable[[], DBusConnection] = open_dbus_connection,
    ) -> None:
        self.app_name = app_name
        self._timeout = call_timeout
        self._connect = connect
        self._addr = DBusAddress(OBJECT_PATH, bus_name=BUS_NAME, interface=INTERFACE)
        self._lock = threading.Lock()
        self._conn: DBusConnection | None = None
        self._router: DBusRouter | None = None
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None

    def _open(self) -> DBusRouter:
        with self._lock:
            if self._router is None:
                try:
                    self._conn = self._connect()
                except (OSError, KeyError, ValueError) as exc:
                    raise NotificationError(f"no D-Bus session bus: {exc}") from exc
                self._router = DBusRouter(self._conn)
            return self._router

    # -- calls (any thread) --------------------------------------------------------------------
    def _call(self, method: str, signature: str | None = None, body: tuple[Any, ...] = ()) -> Any:
        router = self._open()
        msg = new_method_call(self._addr, method, signature, body)
        try:
            reply = router.send_and_get_reply(msg, timeout=self._timeout)
        except Exception as exc:  # router closed, timeout, socket error
            raise NotificationError(f"the notification service did not answer: {exc}") from exc
        if reply.header.message_type is MessageType.error:
            raise NotificationError(f"{method} failed: {reply.body}")
        return reply.body

    def capabilities(self) -> list[str]:
        body = self._call("GetCapabilities")
        return [str(c) for c in body[0]]

    def supports_actions(self) -> bool:
        try:
            return "actions" in self.capabilities()
        except NotificationError:
            return False

    def notify(
        self,
        summary: str,
        body: str,
        actions: Sequence[tuple[str, str]] = (),
        *,
        icon: str = "",
        timeout_ms: int = -1,
        replaces_id: int = 0,
        urgency: int | None = None,
    ) -> int:
        """Show a notification; ``actions`` are (key, label) pairs. Returns its id."""
        flat: list[str] = []
        for key, label in actions:
            flat += [key, label]
        hints: dict[str, tuple[str, Any]] = {"desktop-entry": ("s", "aegis-tray")}
        if urgency is not None:
            hints["urgency"] = ("y", urgency)
        reply = self._call(
            "Notify",
            "susssasa{sv}i",
            (self.app_name, replaces_id, icon, summary, body, flat, hints, timeout_ms),
        )
        return int(reply[0])

    def close_notification(self, notification_id: int) -> None:
        self._call("CloseNotification", "u", (notification_id,))

    # -- signals (own thread) ------------------------------------------------------------------
    def listen(self, on_action: ActionCallback, on_closed: ClosedCallback) -> None:
        """Subscribe to the daemon's signals and start the ``aegis-dbus-notify`` thread."""
        router = self._open()
        rule = MatchRule(type="signal", interface=INTERFACE, path=OBJECT_PATH)
        try:
            router.send_and_get_reply(message_bus.AddMatch(rule), timeout=self._timeout)
        except Exception as exc:
            raise NotificationError(f"cannot listen to notifications: {exc}") from exc
        signals: queue.Queue[Message] = queue.Queue(maxsize=256)
        handle = router.filter(rule, queue=signals)
        self._stop.clear()

        def run() -> None:
            with handle:
                while not self._stop.is_set():
                    try:
                        msg = signals.get(timeout=0.25)
                    except queue.Empty:
                        continue
                    member = msg.header.fields.get(HeaderFields.member)
                    try:
                        if member == "ActionInvoked":
                            nid, key = msg.body
                            on_action(int(nid), str(key))
                        elif member == "NotificationClosed":
                            nid, reason = msg.body
                            on_closed(int(nid), int(reason))
                    except Exception:  # a consumer's bug must not end the listener
                        log.exception("notification signal handler failed")

        self._listener = threading.Thread(target=run, name="aegis-dbus-notify", daemon=False)
        self._listener.start()

    def stop(self) -> None:
        """Stop listening, join the thread, close the connection. Idempotent."""
        self._stop.set()
        if self._listener is not None:
            self._listener.join(5)
            self._listener = None
        with self._lock:
            if self._router is not None:
                with contextlib.suppress(Exception):
                    self._router.close()
                self._router = None
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None
