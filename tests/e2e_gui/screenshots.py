"""Screenshots of the real app under Xvfb: the tray and its menu, a notification, and every
window. Run inside ``xvfb-run -a -s "-screen 0 1366x768x24" dbus-run-session --`` with
AEGIS_HOME set to an empty folder; it starts dunst and trayer itself.

Usage: screenshots.py OUTDIR [SCAN_FOLDER]

SCAN_FOLDER (default /usr/lib) is scanned for the "scan in progress" picture.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ["QT_QPA_PLATFORM"] = "xcb"
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")

from PySide6.QtCore import QEventLoop, QPoint, QRect, QTimer
from PySide6.QtGui import QGuiApplication, QPainter, QPixmap
from PySide6.QtWidgets import QApplication, QWidget

from tests.e2e_gui.helpers import EICAR, start_desktop


def pump(ms: int) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def until(what: str, cond: Callable[[], bool], timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(what)
        pump(50)


class Shots:
    def __init__(self, out: Path) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.saved: list[str] = []

    def widget(self, name: str, w: QWidget, settle: int = 400) -> None:
        w.show()
        w.raise_()
        pump(settle)
        self._save(name, w.grab())

    def screen(self, name: str, rect: QRect | None = None, settle: int = 500) -> None:
        pump(settle)
        screen = QGuiApplication.primaryScreen()
        pix = screen.grabWindow(0)
        if rect is not None:
            pix = pix.copy(rect.intersected(pix.rect()))
        self._save(name, pix)

    def _save(self, name: str, pix: QPixmap) -> None:
        path = self.out / f"{name}.png"
        if not pix.save(str(path)):
            raise OSError(f"cannot save {path}")
        self.saved.append(path.name)
        print(f"saved {path} ({pix.width()}x{pix.height()})", flush=True)


def icons_sheet(shots: Shots) -> None:
    from aegis_gui.icons import TrayState, app_icon, state_icon

    pix = QPixmap(6 * 80 + 20, 100)
    pix.fill()
    p = QPainter(pix)
    for i, icon in enumerate([app_icon(), *(state_icon(s) for s in TrayState)]):
        p.drawPixmap(10 + i * 80, 10, icon.pixmap(64, 64))
        p.drawPixmap(10 + i * 80 + 24, 78, icon.pixmap(16, 16))
    p.end()
    shots._save("icons", pix)


def main(out: Path, scan_folder: str) -> int:
    work = Path(tempfile.mkdtemp(prefix="aegis-shots-"))
    watched = work / "Downloads"
    watched.mkdir()
    home = Path(os.environ["AEGIS_HOME"])
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "settings.toml").write_text(
        f'[realtime]\nfolders = ["{watched}"]\n\n[tray]\nprompt_timeout = 600\n\n'
        "[quarantine]\nuse_keyring = false\n"
    )
    helpers = start_desktop()
    app = QApplication(["aegis-tray"])
    app.setQuitOnLastWindowClosed(False)
    from aegis_engine import AegisPaths
    from aegis_gui.controller import Options, TrayApp
    from aegis_gui.dbus_notify import FreedesktopNotifications
    from aegis_gui.icons import app_icon

    app.setWindowIcon(app_icon())
    shots = Shots(out)
    tray_app = TrayApp(
        AegisPaths.default(),
        Options(notifications=FreedesktopNotifications(), pick_folder=lambda _p: str(work)),
    )
    try:
        tray_app.start()
        assert tray_app.tray is not None, "no system tray: is trayer running?"
        until("consent dialog", lambda: "consent" in tray_app.windows)
        consent = tray_app.windows["consent"]
        consent.resize(640, 700)  # as it opens on a 1366x768 screen
        shots.widget("consent-first-run", consent)
        consent.accept()
        until("protected", lambda: tray_app.state.value == "protected")
        geo = tray_app.tray.icon.geometry()
        print("tray icon at", geo, flush=True)
        screen_w = QGuiApplication.primaryScreen().geometry().width()
        top_right = QRect(screen_w - 240, 0, 240, 40)  # the tray host's corner
        notification_area = QRect(screen_w - 340, 0, 340, 160)
        shots.screen("tray-protected", top_right)
        tray_app.tray.menu.popup(QPoint(geo.left() - 10, geo.bottom() + 4))
        pump(400)
        menu_geo = tray_app.tray.menu.geometry().adjusted(-40, -40, 20, 20)
        shots.screen("tray-menu", menu_geo.united(top_right))
        tray_app.tray.pause_menu.popup(
            tray_app.tray.menu.geometry().topLeft()
            + QPoint(-tray_app.tray.pause_menu.sizeHint().width(), 90)
        )
        pump(300)
        shots.screen(
            "tray-menu-pause",
            tray_app.tray.menu.geometry()
            .united(tray_app.tray.pause_menu.geometry())
            .adjusted(-20, -40, 20, 20)
            .united(top_right),
        )
        tray_app.tray.pause_menu.hide()
        tray_app.tray.menu.hide()
        pump(200)

        shots.widget("status", tray_app.show_status())
        target = watched / "invoice-2026-11.pdf.exe"
        target.write_bytes(EICAR)
        until("threat state", lambda: tray_app.state.value == "threat")
        pump(800)
        shots.screen("notification-and-tray-threat", notification_area, settle=300)
        shots.widget("status-threat", tray_app.show_status())
        alert = tray_app.alerts.all()[0]
        dialog = tray_app.show_alert(alert.id)
        assert dialog is not None
        shots.widget("alert", dialog)
        tray_app.answer(alert.id, "quarantine")
        until("quarantined", lambda: alert.state.value == "quarantined")
        pump(600)
        shots.screen("notification-confirmation", notification_area, settle=200)
        shots.widget("alert-done", dialog)
        dialog.close()

        alerts = tray_app.show_alerts()
        until("history", lambda: len(alerts.rows) > 1)
        alerts.table.selectRow(0)
        shots.widget("alerts", alerts)
        alerts.close()

        quarantine = tray_app.show_quarantine()
        until("vault items", lambda: len(quarantine.items) == 1)
        quarantine.table.selectRow(0)
        shots.widget("quarantine", quarantine)
        quarantine.close()

        settings = tray_app.show_settings()
        for i, name in enumerate(("protection", "exclusions", "schedule", "privacy", "updates")):
            settings.tabs.setCurrentIndex(i)
            shots.widget(f"settings-{name}", settings)
        settings.close()
        preview = tray_app.show_preview("cloud-lookup")
        shots.widget("what-would-be-sent", preview)
        preview.close()

        scan = tray_app.show_scan()
        scan.pages.setCurrentIndex(0)
        shots.widget("scan-choose", scan)
        tray_app.start_scan("folder", [scan_folder])
        until("scan progress", lambda: scan.files > 2000, timeout=120)
        pump(1200)
        shots.widget("scan-running", scan)
        tray_app.scans.cancel()
        until("scan cancelled", lambda: not tray_app.scans.running, timeout=60)
        shots.widget("scan-cancelled", scan)
        sample = work / "scan-sample"
        sample.mkdir()
        for i in range(300):
            (sample / f"note{i}.txt").write_text(f"file {i}\n" * 20)
        (sample / "eicar_test.com").write_bytes(EICAR)
        tray_app.start_scan("folder", [str(sample)])
        until("scan done", lambda: not tray_app.scans.running, timeout=60)
        scan.results.selectRow(0)
        shots.widget("scan-results", scan)
        scan.close()
        for waiting in [a for a in tray_app.alerts.all() if a.open]:
            tray_app.answer(waiting.id, "quarantine")
        until("answered", lambda: tray_app.alerts.open_count == 0)

        tray_app.protection.pause(15 * 60)
        pump(300)
        shots.screen("tray-paused", top_right)
        shots.widget("status-paused", tray_app.show_status())
        icons_sheet(shots)
    finally:
        tray_app.shutdown()
        for h in helpers:
            h.terminate()
        shutil.rmtree(work, ignore_errors=True)
    print("screenshots: " + " ".join(shots.saved), flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "/usr/lib"))
