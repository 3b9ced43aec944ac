"""Shared by tests/test_gui_*.py and the scripts run under Xvfb."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keyring.errors
from keyring.backend import KeyringBackend

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


class MemoryKeyring(KeyringBackend):
    """A keyring that lives in this process only: tests never touch a real one.

    Usable as ``PYTHON_KEYRING_BACKEND=tests.e2e_gui.helpers.MemoryKeyring``."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if (service, username) not in self.store:
            raise keyring.errors.PasswordDeleteError("not found")
        del self.store[(service, username)]


def quiet_monitor(
    engine: Any,
    watch: Sequence[str] | None,
    handle: Callable[..., Mapping[str, Any]],
    *,
    decoys: bool = True,
) -> Any:
    """The real Monitor, on-access scanning only (no process monitor, no shield, so no
    decoys either)."""
    from aegis_engine.monitor import Monitor

    return Monitor(
        engine, list(watch) if watch else None, handle=handle, processes=False, shield=False
    )


def shielded_monitor(
    engine: Any,
    watch: Sequence[str] | None,
    handle: Callable[..., Mapping[str, Any]],
    *,
    decoys: bool = True,
) -> Any:
    """The real Monitor with the ransomware shield over the watched folders (it plants its
    decoys there when ``decoys``), without the process monitor."""
    from aegis_engine.monitor import Monitor, MonitorOptions

    return Monitor(
        engine,
        list(watch) if watch else None,
        handle=handle,
        processes=False,
        options=MonitorOptions(canaries=decoys),
    )


class FakeNotifications:
    """Stands in for FreedesktopNotifications: records notifications, lets a test click."""

    def __init__(self, actions: bool = True, unanswered: int = 0) -> None:
        self.actions = actions
        self.unanswered = unanswered
        """How many capability requests time out first (a slow session bus at login)."""
        self.sent: list[tuple[int, str, str, tuple[tuple[str, str], ...]]] = []
        self._on_action: Callable[[int, str], None] | None = None
        self.closed: list[int] = []
        self.icons: list[str] = []
        """The icon of each sent notification, in order."""
        self.stopped = False

    def capabilities(self) -> list[str]:
        if self.unanswered > 0:
            self.unanswered -= 1
            from aegis_gui.dbus_notify import NotificationError

            raise NotificationError("the notification service did not answer: timeout")
        return ["actions", "body"] if self.actions else ["body"]

    def supports_actions(self) -> bool:  # as FreedesktopNotifications answers it
        from aegis_gui.dbus_notify import NotificationError

        try:
            return "actions" in self.capabilities()
        except NotificationError:
            return False

    def listen(
        self, on_action: Callable[[int, str], None], on_closed: Callable[[int, int], None]
    ) -> None:
        self._on_action = on_action

    def notify(
        self, summary: str, body: str, actions: Sequence[tuple[str, str]] = (), **kw: Any
    ) -> int:
        self.icons.append(str(kw.get("icon", "")))
        nid = len(self.sent) + 1
        self.sent.append((nid, summary, body, tuple(actions)))
        return nid

    def close_notification(self, nid: int) -> None:
        self.closed.append(nid)

    def click(self, nid: int, key: str = "default") -> None:
        """What the daemon does: emit ActionInvoked on its own (listener) thread."""
        assert self._on_action is not None
        self._on_action(nid, key)

    def stop(self) -> None:
        self.stopped = True


TRAYER_ARGS = (
    "--edge", "top", "--align", "right", "--widthtype", "request", "--height", "28",
    "--SetDockType", "true", "--tint", "0x2b2b2b", "--transparent", "false",
)  # fmt: skip


def start_tray_host(*extra: str) -> subprocess.Popen[bytes]:
    """trayer, a real system tray on the virtual screen (start it before the app)."""
    return subprocess.Popen(
        ["trayer", *TRAYER_ARGS, *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def start_desktop() -> list[subprocess.Popen[bytes]]:
    """dunst (notifications) and trayer (the system tray) for the scripts run under Xvfb;
    the caller terminates them."""
    helpers = [
        subprocess.Popen(["dunst"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        start_tray_host("--iconspacing", "4"),
    ]
    time.sleep(1.0)
    return helpers
