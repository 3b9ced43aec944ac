"""``aegis-tray``: the Aegis tray application.

One instance per profile: starting it again shows the running one's status window, or, with
``--scan PATH...`` (the file managers' "Scan with Aegis"), hands the paths to the running one,
which shows its scan window and scans them. Where
the desktop has no system tray, the status window is the main window. Run it with
``python -m aegis_gui.app`` until the ``aegis-tray`` script is installed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence


def _process_age() -> float:
    """Seconds since this process started (for the startup timing)."""
    try:
        import psutil

        return time.time() - float(psutil.Process().create_time())
    except Exception:  # pragma: no cover - psutil missing: count from here
        return 0.0


def qt_warning() -> str | None:
    """PySide6 6.12.0 drops a reference to None (or True) on many calls under Python 3.11,
    where those objects are not immortal: a long-running app then aborts with
    "Fatal Python error: none_dealloc". 6.11.3 does not; Python 3.12+ is immune."""
    import PySide6

    if PySide6.__version__ == "6.12.0" and sys.version_info < (3, 12):
        return (
            "PySide6 6.12.0 on Python 3.11 has a reference-counting bug that makes long "
            "sessions crash; install PySide6-Essentials 6.11.3 (or use Python 3.12+)"
        )
    return None


def _import_engine_first() -> None:
    """Import the engine before PySide6: PySide6's import hook reads (and linecache keeps)
    the source of every module imported after it, several MB for the engine alone."""
    import aegis_engine
    import aegis_engine.decision
    import aegis_engine.history
    import aegis_engine.monitor
    import aegis_engine.privacy  # noqa: F401

    if sys.platform.startswith("linux"):
        import jeepney.io.threading  # noqa: F401


def _hand_off_if_running(args: argparse.Namespace) -> int | None:
    """A second start (the menu entry, "Scan with Aegis") hands its request to the running
    instance before it loads the engine's scanning code and Qt's widgets, which is what makes
    a start slow. None: no instance is running (or it cannot be told): start normally, and
    ``SingleInstance.claim`` decides for good."""
    from aegis_engine.paths import AegisPaths

    from .instance_lock import held_by_another, lock_file

    paths = AegisPaths.default()
    if not held_by_another(lock_file(paths.state_dir)):
        return None  # nothing imported Qt yet: the engine still comes first
    from .single_instance import SHOW, scan_request, send_request, server_name

    scan_paths = [os.path.abspath(p) for p in args.scan or []]
    request = scan_request(scan_paths) if scan_paths else SHOW
    if not send_request(server_name(paths.config_dir), request):
        print("aegis-tray: Aegis is running but did not answer; try again.", file=sys.stderr)
        return 2
    what = f"asked it to scan {len(scan_paths)} item(s)" if scan_paths else "showing its window"
    print(f"aegis-tray: Aegis is already running; {what}.", file=sys.stderr)
    return 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="aegis-tray", description="The Aegis tray application.")
    p.add_argument("--no-protection", action="store_true", help="do not start real-time protection")
    p.add_argument(
        "--no-notifications",
        action="store_true",
        help="no desktop notifications: use tray messages or windows",
    )
    p.add_argument("--show", action="store_true", help="open the status window at start")
    p.add_argument(
        "--timings",
        action="store_true",
        help="print on stderr when the protected state is first shown",
    )
    p.add_argument(
        "--scan",
        nargs="+",
        metavar="PATH",
        help="scan these files or folders in the scan window (in the running instance, if any)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # the engine's scan workers (a frozen build)
    args = _parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="aegis-tray: %(levelname)s: %(name)s: %(message)s",
    )
    handed = _hand_off_if_running(args)
    if handed is not None:
        return handed
    _import_engine_first()
    warning = qt_warning()
    if warning:
        print(f"aegis-tray: warning: {warning}", file=sys.stderr)
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from aegis_engine import AegisPaths
    from aegis_engine.errors import AegisError

    from .controller import Options, TrayApp
    from .icons import app_icon
    from .single_instance import SingleInstance

    app = QApplication.instance() or QApplication(["aegis-tray"])
    assert isinstance(app, QApplication)
    app.setApplicationName("Aegis")
    app.setApplicationDisplayName("Aegis")
    app.setDesktopFileName("aegis-tray")
    app.setWindowIcon(app_icon())
    app.setQuitOnLastWindowClosed(False)

    paths = AegisPaths.default()
    from aegis_engine.privacy.crash import install_excepthook

    install_excepthook("tray", paths)  # kept locally; queued only with crash-reports consent
    single = SingleInstance(paths.config_dir, paths.state_dir)
    scan_paths = [os.path.abspath(p) for p in args.scan or []]
    if not single.claim(scan_paths=scan_paths):
        if not single.delivered:
            print("aegis-tray: Aegis is running but did not answer; try again.", file=sys.stderr)
            return 2
        what = f"asked it to scan {len(scan_paths)} item(s)" if scan_paths else "showing its window"
        print(f"aegis-tray: Aegis is already running; {what}.", file=sys.stderr)
        return 0

    notifications = None
    if not args.no_notifications and os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        from .dbus_notify import FreedesktopNotifications

        notifications = FreedesktopNotifications()
    try:
        tray_app = TrayApp(
            paths, Options(protection=not args.no_protection, notifications=notifications)
        )
    except AegisError as exc:
        QMessageBox.critical(None, "Aegis cannot start", str(exc))
        single.release()
        return 2
    single.show_requested.connect(tray_app.show_status)
    single.scan_requested.connect(tray_app.scan_paths)
    if tray_app.tray is None:
        app.setQuitOnLastWindowClosed(True)
    app.aboutToQuit.connect(tray_app.shutdown)
    if args.timings:
        where = (
            "tray icon (system tray available)"
            if tray_app.tray is not None
            else "status window (no system tray)"
        )
        tray_app.notifier.mode_changed.connect(
            lambda mode: print(
                f"aegis-tray: notifications: {mode} {_process_age():.3f} s after the process "
                "started",
                file=sys.stderr,
                flush=True,
            )
        )
        tray_app.protected_shown.connect(
            lambda: print(
                f"aegis-tray: protected shown {_process_age():.3f} s after the process "
                f"started, in the {where}",
                file=sys.stderr,
                flush=True,
            )
        )

    # SIGTERM / SIGINT: quit cleanly (Python runs handlers only between bytecodes, so a
    # timer gives it the chance while Qt's loop waits).
    def on_signal(_signum: int, _frame: object) -> None:
        QTimer.singleShot(0, tray_app.quit)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(250)

    from aegis_engine.privacy.schedule import SendTimer

    sending = SendTimer(paths)  # queued reports of allowed purposes with an endpoint only
    tray_app.start()
    sending.start()
    tray_app.freeze_startup_heap()
    if args.show:
        tray_app.show_status()
    if scan_paths:
        tray_app.scan_paths(scan_paths)
    code = app.exec()
    sending.stop()
    tray_app.shutdown()
    single.release()
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
