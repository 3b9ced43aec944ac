"""The tray app's wiring: engine services, tray, notifications, windows.

Everything is built here and handed down explicitly (no global singletons). Windows emit
requests; work runs in ops; results come back on the GUI thread.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication, QDialog, QSystemTrayIcon, QWidget

from aegis_engine import AegisPaths, Engine
from aegis_engine.decision import DecisionEngine
from aegis_engine.errors import ConsentRequired
from aegis_engine.privacy import ConsentStore

from . import autostart, memory, preferences
from .alert_view import AlertPresenter
from .alerts import AlertCenter, AlertResponder
from .bridge import EngineBridge
from .catch_up import PauseCatchUp
from .dbus_notify import FreedesktopNotifications
from .icons import TrayState, icon_path
from .notifications import Notifier
from .ops import OpRunner
from .preferences import Preferences
from .protection import MonitorFactory, Protection, Status, default_monitor_factory
from .scan_view import ScanPresenter, safe_default_folders
from .scanning import ScanService
from .state import Situation, describe
from .tray import Tray
from .updates import app_update_line, check_for_updates
from .vault_view import VaultPresenter

if TYPE_CHECKING:  # each window's module is imported when it is first opened
    from .windows.alert_dialog import AlertDialog
    from .windows.alerts import AlertsWindow
    from .windows.consent import ConsentDialog
    from .windows.preview import SendPreviewDialog
    from .windows.quarantine import QuarantineWindow
    from .windows.scan import ScanWindow
    from .windows.settings import SettingsDialog
    from .windows.status import StatusWindow
from .wording import plain_note

log = logging.getLogger(__name__)


@dataclass
class Options:
    """How the controller starts; tests and the app's command line set these."""

    tray: bool | None = None
    """Use a tray icon (None: if the desktop has a system tray)."""
    protection: bool = True
    """Start real-time protection (as the settings say)."""
    notifications: FreedesktopNotifications | None = None
    """The D-Bus notification client (None: no desktop notifications)."""
    first_run: bool = True
    """Show the consent dialog when the choices were never reviewed."""
    monitor_factory: MonitorFactory = default_monitor_factory
    pick_folder: Callable[[QWidget], str] | None = None


class TrayApp(QObject):
    """One running tray app for one profile (``engine.paths``)."""

    state_changed = Signal(object)
    """The TrayState after every change."""
    protected_shown = Signal()
    """First time the tray (or status window) showed the protected state."""

    def __init__(self, paths: AegisPaths, options: Options | None = None) -> None:
        """Settings that are not valid become warnings (defaults apply), never an error."""
        super().__init__()
        self.options = opts = options or Options()
        self.bridge = EngineBridge(parent=self)
        engine_warn = self.bridge.on_warning
        self.engine = engine = Engine(paths, on_warning=engine_warn)
        self.runner = OpRunner(parent=self)
        self.runner.pool.setMaxThreadCount(max(4, self.runner.pool.maxThreadCount()))
        self.consent = ConsentStore.for_paths(engine.paths, warn=engine_warn)
        self.settings = engine.settings_store
        self.prefs = preferences.load(engine.settings)
        self.alerts = AlertCenter(self)
        self.responder = AlertResponder(engine, self.alerts, self.runner, self)
        self.protection = Protection(
            engine,
            self.bridge,
            self.runner,
            factory=opts.monitor_factory,
            parent=self,
        )
        self.scans = ScanService(engine, self.bridge, self)
        use_tray = QSystemTrayIcon.isSystemTrayAvailable() if opts.tray is None else opts.tray
        self.tray: Tray | None = Tray(self) if use_tray else None
        self.notifier = Notifier(
            self.runner,
            lambda: self.tray.icon if self.tray is not None else None,
            backend=opts.notifications,
            prompt_timeout=self.prefs.prompt_timeout,
            icon=str(icon_path("shield-threat")),
            info_icon=str(icon_path("shield-protected")),
            parent=self,
        )
        self.vault = VaultPresenter(engine, self.runner, self._show, self)
        self.scan_view = ScanPresenter(
            self.scans, self.alerts, self.notifier, self._show, pick_folder=opts.pick_folder
        )
        self.alert_view = AlertPresenter(
            engine,
            self.runner,
            self.alerts,
            self.responder,
            self.notifier,
            self._show,
            on_alert_changed=self.scan_view.alert_changed,
            on_vault_changed=self._vault_changed,
            show_vault=self.vault.show,
            parent=self,
        )
        self.vault.changed.connect(self.alert_view.history_changed)
        self.catch_up = PauseCatchUp(
            self.protection,
            self.scan_view,
            self.runner,
            self.notifier,
            engine.paths.state_dir / "protection-paused.json",
            self,
        )
        # Decoys are planted only once the first run's choices are saved (issue 16, item 5).
        self.protection.decoys_allowed = not (opts.first_run and not self.consent.reviewed)
        self.updating = False
        self.note = ""
        self.state = TrayState.PAUSED
        self._protected_once = False
        self._shut_down = False
        self.windows: dict[str, QWidget] = {}
        self._state_timer = QTimer(self)
        self._state_timer.timeout.connect(self.refresh_state)
        self._trim_timer = QTimer(self)
        self._trim_timer.timeout.connect(memory.trim)
        self._update_timer = QTimer(self)
        self._update_timer.setSingleShot(True)
        self._update_timer.timeout.connect(self._background_update)
        self._wire()

    # -- wiring --------------------------------------------------------------------------------
    def decisions(self) -> DecisionEngine:
        return self.engine.decisions

    def _wire(self) -> None:
        self.bridge.detection.connect(self.alert_view.on_detection)
        self.bridge.monitor_event.connect(self._on_monitor_event)
        self.bridge.warning.connect(self._engine_warning)
        self.protection.changed.connect(self.refresh_state)
        self.alerts.open_count_changed.connect(lambda _n: self.refresh_state())
        self.scan_view.changed.connect(self.refresh_state)
        self.scan_view.choice.connect(self.answer)
        if self.tray is not None:
            t = self.tray
            self._connect_shared(t)
            t.pause.connect(self.protection.pause)
            t.resume.connect(self.protection.resume)
            t.open_status.connect(self.show_status)
            t.check_updates.connect(self.check_updates)
            t.quit.connect(self.quit)
            t.message_clicked.connect(self.notifier.tray_message_clicked)

    def _connect_shared(self, source: Tray | StatusWindow) -> None:
        """The entries the tray menu and the status window both have."""
        source.scan_folder.connect(self.scan_folder)
        source.quick_scan.connect(lambda: self.start_scan("quick"))
        source.full_scan.connect(lambda: self.start_scan("full"))
        source.open_alerts.connect(self.show_alerts)
        source.open_quarantine.connect(self.show_quarantine)
        source.open_settings.connect(self.show_settings)

    def start(self) -> None:
        """Show the tray (or the status window), start protection, notifications, schedule."""
        if self.tray is not None:
            self.tray.show()
        else:
            self.show_status()
        self.notifier.start()
        self.apply_preferences(self.prefs, restart_protection=self.options.protection)
        self.scan_view.start_schedule()
        self._state_timer.start(15_000)
        self._trim_timer.start(300_000)
        self._update_timer.start(60_000)  # first background update check
        self.refresh_state()
        if self.options.first_run and not self.consent.reviewed:
            QTimer.singleShot(0, self.show_consent)

    @staticmethod
    def freeze_startup_heap() -> None:
        """Move everything made so far (modules, Qt wrappers, the engine's objects: they live
        as long as the app) out of the cyclic collector's sight (``gc.freeze``), so that a
        full collection during a big scan does not walk them on the GUI thread: one such
        collection stalled the event loop for 95 ms in ``bench/tray_second_start.py``. Called
        once, after :meth:`start`, by ``aegis-tray``."""
        gc.freeze()

    # -- state ---------------------------------------------------------------------------------
    def situation(self) -> Situation:
        scanning = ""
        if self.scans.running:
            scanning = f"{self.scans.kind.capitalize()} scan running."
        return Situation(
            protection=self.protection.status,
            folders=len(self.protection.folders),
            open_alerts=self.alerts.open_count,
            updating=self.updating,
            scanning=scanning,
            pause_left_ms=self.protection.pause_remaining_ms(),
            error=self.protection.error,
            note=self.note,
        )

    def refresh_state(self) -> None:
        state, detail = describe(self.situation())
        self.state = state
        paused = self.protection.status in (Status.PAUSED,)
        can_pause = self.protection.status in (Status.RUNNING, Status.STARTING, Status.ERROR)
        if self.tray is not None:
            self.tray.set_state(state, detail)
            self.tray.set_paused(paused, can_pause=can_pause)
            self.tray.set_open_alerts(self.alerts.open_count)
            self.tray.set_updating(self.updating)
        status = self.windows.get("status")
        if status is not None:  # only show_status() puts one there (its module is loaded)
            from .windows.status import StatusWindow

            if isinstance(status, StatusWindow):
                paused_headline = "Real-time protection is paused" if paused else None
                status.set_status(
                    state, detail, paused_headline if state is TrayState.PAUSED else None
                )
                status.set_open_alerts(self.alerts.open_count)
                status.set_paused(paused, paused or can_pause)
        self.state_changed.emit(state)
        if state is TrayState.PROTECTED and not self._protected_once:
            self._protected_once = True
            self.protected_shown.emit()
            QTimer.singleShot(2000, memory.trim)

    # -- windows -------------------------------------------------------------------------------
    def _show(self, window: QWidget) -> QWidget:
        """Every window the app opens comes here: fitted to the screen's available area
        (a 1366x768 laptop with a panel), then shown and raised."""
        if window.isMinimized():
            window.showNormal()
        from .windows.common import fit_to_screen

        fit_to_screen(window)
        window.show()
        window.raise_()
        window.activateWindow()
        return window

    def show_status(self) -> StatusWindow:
        from .windows.status import StatusWindow

        w = self.windows.get("status")
        if not isinstance(w, StatusWindow):
            w = StatusWindow(standalone=self.tray is None)
            self._connect_shared(w)
            w.open_scan.connect(self.show_scan)
            w.pause_toggled.connect(self._toggle_pause)
            w.quit_requested.connect(self.quit)
            self.windows["status"] = w
            self.refresh_state()
        self._show(w)
        return w

    def _toggle_pause(self) -> None:
        if self.protection.status is Status.PAUSED:
            self.protection.resume()
        else:
            self.protection.pause(None)

    def show_consent(self) -> ConsentDialog:
        from .windows.consent import ConsentDialog

        w = self.windows.get("consent")
        if not isinstance(w, ConsentDialog):
            w = ConsentDialog(self.consent, decoys=self.prefs.decoys)
            w.decoys_chosen.connect(self._decoys_chosen)
            self.windows["consent"] = w
        self._show(w)
        return w

    def show_settings(self) -> SettingsDialog:
        from .windows.settings import SettingsDialog

        w = self.windows.get("settings")
        if isinstance(w, SettingsDialog) and w.isVisible():
            self._show(w)
            return w
        can_autostart = autostart.supported()
        prefs = replace(self.prefs, autostart=can_autostart and autostart.is_enabled())
        if self.options.pick_folder is not None:
            w = SettingsDialog(
                prefs,
                self.consent,
                safe_default_folders(),
                pick_folder=self.options.pick_folder,
                can_autostart=can_autostart,
            )
        else:
            w = SettingsDialog(
                prefs, self.consent, safe_default_folders(), can_autostart=can_autostart
            )
        w.saved.connect(self._settings_saved)
        w.preview_requested.connect(self.show_preview)
        self._keep_until_closed("settings", w)
        self._show(w)
        return w

    def _keep_until_closed(self, key: str, dialog: QDialog) -> None:
        """A dialog made afresh at each opening is deleted once closed (a closed Settings
        window kept about 2 MB per opening while its Python wrapper waited for the next)."""
        old = self.windows.get(key)
        if old is not None and old is not dialog:
            old.deleteLater()
        self.windows[key] = dialog

        def closed(_result: int) -> None:
            if self.windows.get(key) is dialog:
                del self.windows[key]
            dialog.deleteLater()

        dialog.finished.connect(closed)

    def show_preview(self, purpose_id: str) -> SendPreviewDialog:
        from .windows.preview import SendPreviewDialog

        w = SendPreviewDialog(self.consent, purpose_id, paths=self.engine.paths)
        self._keep_until_closed("preview", w)
        self._show(w)
        return w

    def show_alerts(self) -> AlertsWindow:
        return self.alert_view.show()

    def show_alert(self, alert_id: str) -> AlertDialog | None:
        return self.alert_view.show_alert(alert_id)

    def answer(self, alert_id: str, choice: str) -> None:
        self.alert_view.answer(alert_id, choice)

    def show_quarantine(self) -> QuarantineWindow:
        return self.vault.show()

    def show_scan(self) -> ScanWindow:
        return self.scan_view.show()

    def start_scan(self, kind: str, targets: list[str] | None = None) -> int | None:
        return self.scan_view.start(kind, targets)

    def scan_folder(self) -> None:
        self.scan_view.scan_folder()

    def scan_paths(self, paths: list[str]) -> None:
        """Scan chosen files or folders (``aegis-tray --scan``), after a running scan."""
        self.scan_view.scan_paths(paths)

    def _vault_changed(self) -> None:
        if self.vault.window is not None:
            self.vault.reload()

    # -- settings ------------------------------------------------------------------------------
    def _settings_saved(self, prefs: Preferences) -> None:
        if autostart.supported() and prefs.autostart != autostart.is_enabled():
            self.runner.run(
                lambda: autostart.set_enabled(prefs.autostart),
                failure=lambda exc: self._note(f"Start at login not changed: {exc}"),
                name="autostart",
            )

        def saved(_settings: object) -> None:
            self.apply_preferences(prefs, restart_protection=True)

        self.runner.run(
            lambda: preferences.save(self.settings, prefs),
            success=saved,
            failure=lambda exc: self._note(f"Settings not saved: {exc}"),
            name="save-settings",
        )

    def _decoys_chosen(self, on: bool) -> None:
        """The first-run choices are saved: from now on the shield may plant its decoys (if
        ``on``); protection restarts with them once the setting is saved."""
        held_back = not self.protection.decoys_allowed
        self.protection.decoys_allowed = True
        if on != self.prefs.decoys:
            self._settings_saved(replace(self.prefs, decoys=on))
        elif on and held_back and self.protection.status is not Status.OFF:
            self.protection.configure(self.prefs.realtime, self.prefs.folders)

    def apply_preferences(self, prefs: Preferences, *, restart_protection: bool) -> None:
        old = self.prefs
        self.prefs = prefs
        self.notifier.prompt_timeout = prefs.prompt_timeout
        self.scan_view.set_preferences(prefs)
        if restart_protection:
            changed = (old.realtime, old.folders, old.exclude_paths, old.decoys) != (
                prefs.realtime,
                prefs.folders,
                prefs.exclude_paths,
                prefs.decoys,
            )
            if changed or self.protection.status in (Status.OFF, Status.ERROR):
                self.protection.configure(prefs.realtime, prefs.folders)
        self.refresh_state()

    def _engine_warning(self, message: str) -> None:
        """Things people must see (a vault key kept in a file, a damaged history rebuilt):
        logged, and shown in the tooltip and the status window."""
        log.warning("engine: %s", message)
        self._note(plain_note(message))

    def _note(self, text: str) -> None:
        self.note = text
        self.refresh_state()

    # -- updates, monitor events ---------------------------------------------------------------
    def check_updates(self) -> None:
        if self.updating:
            return
        self.updating = True
        self.refresh_state()

        def done(exc: BaseException | None, message: object = None) -> None:
            self.updating = False
            if isinstance(exc, ConsentRequired):
                text = "Update checks are off (Settings ▸ Privacy). Nothing was sent."
            else:
                text = str(exc) if exc else str(message or "Aegis is up to date.")
            self.notifier.inform("Aegis: updates", text)
            self._note(text if exc else "")

        paths = self.engine.paths
        self.runner.run(
            lambda: check_for_updates(self.consent, self.prefs.update_server, paths),
            success=lambda r: done(None, r),
            failure=done,
            name="updates",
        )

    def _background_update(self) -> None:
        """Every few hours (with jitter): a quiet check; only news and problems are shown."""
        from aegis_engine.updates.scheduler import UpdateScheduler

        sched = UpdateScheduler(self.engine.paths)
        self._update_timer.start(int(sched.next_delay() * 1000))
        if self.updating or self._shut_down:
            return

        def done(checks: object) -> None:
            result = getattr(checks, "content", None)
            outcome = getattr(result, "result", None)
            if outcome == "updated":
                self.notifier.inform(
                    "Aegis: updates",
                    f"Signatures updated to version {getattr(result, 'version', '?')}.",
                )
            elif outcome in ("refused", "failed"):
                self._note(f"Update {outcome}: {getattr(result, 'reason', '')}")
            line = app_update_line(getattr(checks, "app", None))
            if line and line != self.note:
                self.notifier.inform("Aegis: new version", line)
                self._note(line)

        self.runner.run(
            sched.run_checks,
            success=done,
            failure=lambda exc: log.warning("background update check: %s", exc),
            name="updates",
        )

    def _on_monitor_event(self, event: object) -> None:
        kind = getattr(event, "kind", "")
        if kind == "ransomware" and getattr(event, "action", "") == "suspended":
            self._ransomware(event)
        elif kind == "error":
            code = getattr(event, "code", "")
            if code in ("inotify-limit", "watch-lost", "permission-denied", "overflow"):
                self._note(str(getattr(event, "message", "")))

    def _ransomware(self, event: object) -> None:
        from .windows.ransomware import RansomwareWindow

        w = RansomwareWindow(event)
        incident = w.incident
        self.windows[f"ransomware-{incident}"] = w

        def choose(inc: str, what: str) -> None:
            self.protection.resolve(
                inc,
                what,
                lambda _r: self.notifier.inform("Aegis", f"Incident {inc}: {what} done."),
                lambda exc: self.notifier.inform("Aegis", f"Incident {inc}: {exc}", warning=True),
            )
            w.close()

        w.choice.connect(choose)
        self.notifier.inform(
            "Aegis stopped a program",
            "A program was changing many files at once and was suspended. Choose what to do.",
            warning=True,
        )
        self._show(w)

    # -- quit ----------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop everything and wait for it (no event loop needed). Idempotent."""
        if self._shut_down:
            return
        self._shut_down = True
        self._state_timer.stop()
        self._trim_timer.stop()
        self._update_timer.stop()
        self.responder.stop()
        self.scan_view.stop()
        self.notifier.stop()
        self.scans.wait()
        self.runner.wait()
        self.protection.shutdown()
        self.runner.wait()
        if self.tray is not None:
            self.tray.hide()
        for w in list(self.windows.values()):
            w.close()
        self.alert_view.close_all()
        self.engine.close()

    def quit(self) -> None:
        started = time.monotonic()
        self.shutdown()
        log.info("stopped in %.2f s", time.monotonic() - started)
        app = QApplication.instance()
        if app is not None:
            app.quit()
