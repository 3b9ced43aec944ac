"""Screenshot of the tray app once its background check has staged a new build of itself.

Everything is real: a signed repository with two builds (tests/test_app_update.py's small
bundles) served over HTTPS on 127.0.0.1 (trustme), an installation made by install.sh, the
tray app's own background check (``UpdateScheduler.run_checks`` in a worker op), dunst's
notification. The one substitution: the source tree is not a frozen bundle, so the layout of
"the running program" is pointed at that installation. Run inside
``xvfb-run -a -s "-screen 0 1366x768x24" dbus-run-session --`` with AEGIS_HOME set to an
empty folder:

    .venv/bin/python -m tests.e2e_gui.screenshot_update_ready docs/screenshots
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ["QT_QPA_PLATFORM"] = "xcb"
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")

from PySide6.QtCore import QRect
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from tests.e2e_gui.helpers import start_desktop
from tests.e2e_gui.screenshots import Shots, pump, until


def main(out: Path) -> int:
    from aegis_engine import AegisPaths
    from aegis_engine.privacy.consent import ConsentStore
    from aegis_engine.repo.app_publish import release_app
    from aegis_engine.updates.app_layout import AppLayout
    from tests.https_server import https_server
    from tests.test_app_update import install, make_bundle
    from tests.update_support import make_repo

    work = Path(tempfile.mkdtemp(prefix="aegis-shot-update-"))
    repo = make_repo(work)
    release_app(repo.root, repo.keys, make_bundle(work / "b1", "1.0.0"))
    release_app(repo.root, repo.keys, make_bundle(work / "b2", "1.1.0", code_line="x = 2"))
    layout = install(work / "prefix" / "lib" / "aegis", work / "b1", "1.0.0")
    AppLayout.of_running = classmethod(lambda cls: AppLayout(layout.lib))  # type: ignore[assignment,method-assign]
    watched = work / "Downloads"
    watched.mkdir()
    home = Path(os.environ["AEGIS_HOME"])
    (home / "config").mkdir(parents=True, exist_ok=True)
    helpers = start_desktop()
    app = QApplication(["aegis-tray"])
    app.setQuitOnLastWindowClosed(False)
    from aegis_gui.controller import Options, TrayApp
    from aegis_gui.dbus_notify import FreedesktopNotifications

    shots = Shots(out)
    with https_server(work, root=repo.root) as srv:
        (home / "config" / "settings.toml").write_text(
            f'[updates]\nserver = "{srv.url}"\nca_file = "{srv.ca_file}"\n'
            f'root = "{repo.root_json}"\n\n[quarantine]\nuse_keyring = false\n\n'
            f'[realtime]\nfolders = ["{watched}"]\n'
        )
        paths = AegisPaths.default()
        tray_app = TrayApp(paths, Options(notifications=FreedesktopNotifications()))
        try:
            tray_app.start()
            until("consent dialog", lambda: "consent" in tray_app.windows)
            tray_app.windows["consent"].accept()
            ConsentStore.for_paths(paths).grant("update-checks")
            until("protected", lambda: tray_app.state.value == "protected")
            tray_app._background_update()  # the timer's first round, without the minute's wait
            until("staged", lambda: "restart" in tray_app.note, timeout=120)
            assert layout.staged_version == "1.1.0", layout.status()
            screen_w = QGuiApplication.primaryScreen().geometry().width()
            shots.screen("update-ready-notification", QRect(screen_w - 340, 0, 340, 160))
            shots.widget("status-update-ready", tray_app.show_status())
        finally:
            tray_app.shutdown()
            pump(300)
            for h in helpers:
                h.terminate()
    print("\n".join(shots.saved))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
