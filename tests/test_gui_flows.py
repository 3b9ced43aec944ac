"""The tray app's flows, offscreen, with the real engine, vault, history and monitor:
first-run consent, settings that persist, quarantine from a notification and from the alert
window, the policy default after a timeout, allow, restore and delete from the quarantine
window, scans (cancel, results), pause and resume, update checks."""

from __future__ import annotations

import os
import threading
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import write_settings

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt

from aegis_engine import (
    AegisPaths,
    FileReport,
    Finding,
    FindingKind,
    ObjectResult,
    Severity,
    Verdict,
)
from aegis_engine.privacy import ConsentStore
from aegis_gui import detection
from aegis_gui.alerts import AlertState
from aegis_gui.controller import Options, TrayApp
from aegis_gui.icons import TrayState
from aegis_gui.protection import Status
from aegis_gui.state import describe
from aegis_gui.windows.alert_dialog import AlertDialog
from aegis_gui.windows.consent import ConsentDialog
from aegis_gui.windows.settings import SettingsDialog
from tests.e2e_gui.helpers import (
    EICAR,
    FakeNotifications,
    MemoryKeyring,
    quiet_monitor,
    shielded_monitor,
)

MakeApp = Callable[..., TrayApp]


@pytest.fixture
def watched(tmp_path: Path, aegis_paths: AegisPaths) -> Path:
    """A watched folder, written into the profile's settings."""
    folder = tmp_path / "watched"
    folder.mkdir()
    write_settings(aegis_paths, f'[realtime]\nfolders = ["{folder}"]\n')
    return folder


@pytest.fixture
def make_app(
    qtbot: Any, aegis_paths: AegisPaths, memory_keyring: MemoryKeyring
) -> Iterator[MakeApp]:
    apps: list[TrayApp] = []

    def make(**changes: Any) -> TrayApp:
        opts = Options(tray=False, first_run=False, monitor_factory=quiet_monitor)
        for key, value in changes.items():
            setattr(opts, key, value)
        app = TrayApp(aegis_paths, opts)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.shutdown()


def running(qtbot: Any, app: TrayApp) -> None:
    qtbot.waitUntil(lambda: app.protection.status is Status.RUNNING, timeout=120_000)


def protected_app(qtbot: Any, make_app: MakeApp) -> TrayApp:
    """A started app whose real-time protection is running."""
    app = make_app()
    app.start()
    running(qtbot, app)
    return app


def eicar_detection(path: Path, verdict: Verdict = Verdict.MALICIOUS) -> FileReport:
    """A report as the scanner makes it (for flows that need no monitor)."""
    import hashlib

    path.write_bytes(EICAR)
    kind = FindingKind.SIGNATURE if verdict is Verdict.MALICIOUS else FindingKind.HEURISTIC
    sev = Severity.MALICIOUS if verdict is Verdict.MALICIOUS else Severity.SUSPICIOUS
    finding = Finding("test", "Test.Detection", sev, kind=kind)
    sha = hashlib.sha256(EICAR).hexdigest()
    obj = ObjectResult(str(path), verdict, [finding], sha256=sha, size=len(EICAR))
    return FileReport(str(path), verdict, [obj], sha256=sha, size=len(EICAR))


def feed(app: TrayApp, report: FileReport) -> None:
    """What the monitor's handler does, from another thread."""
    det = detection.assess(app.engine, report, "real-time")
    t = threading.Thread(target=app.bridge.on_detection, args=(det,))
    t.start()
    t.join()


def alerts_for(qtbot: Any, app: TrayApp, *reports: FileReport) -> list[Any]:
    """Feed these detections; their alerts, once the app lists them all."""
    for report in reports:
        feed(app, report)
    qtbot.waitUntil(lambda: len(app.alerts.all()) == len(reports), timeout=60_000)
    return app.alerts.all()


def notifying_app(
    make_app: MakeApp, *, protection: bool = False
) -> tuple[TrayApp, FakeNotifications]:
    """A started app whose desktop notifications go to a fake notification service."""
    fake = FakeNotifications()
    app = make_app(notifications=fake, protection=protection)
    app.start()
    return app, fake


def click(fake: FakeNotifications, nid: int, action: str) -> None:
    """The user clicks a notification's action (the service calls back from its thread)."""
    threading.Thread(target=fake.click, args=(nid, action)).start()


def first_dialog(qtbot: Any, app: TrayApp, timeout: int = 60_000) -> Any:
    """The alert window that opened, once it has."""
    qtbot.waitUntil(lambda: bool(app.alert_view.dialogs), timeout=timeout)
    return next(iter(app.alert_view.dialogs.values()))


# -- consent ------------------------------------------------------------------------------------


def test_first_run_consent_dialog_is_all_off_and_saves(
    qtbot: Any, make_app: MakeApp, aegis_paths: AegisPaths
) -> None:
    app = make_app(first_run=True, protection=False)
    app.start()
    qtbot.waitUntil(lambda: isinstance(app.windows.get("consent"), ConsentDialog), timeout=60_000)
    dialog = app.windows["consent"]
    assert isinstance(dialog, ConsentDialog) and dialog.isVisible()
    states = {pid: box.isChecked() for pid, box in dialog.boxes.items()}
    assert states == {
        "cloud-lookup": False,
        "sample-submission": False,
        "crash-reports": False,
        "usage-stats": False,
        "update-checks": True,
    }
    dialog.boxes["crash-reports"].setChecked(True)
    assert dialog.decoys is not None and dialog.decoys.isChecked(), "decoys are told, on"
    dialog.decoys.setChecked(False)
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: app.prefs.decoys is False, timeout=60_000)
    saved = tomllib.loads(aegis_paths.settings_file.read_text())
    assert saved["realtime"]["decoys"] is False
    assert not dialog.isVisible()
    store = ConsentStore.for_paths(aegis_paths)
    assert store.reviewed and store.is_granted("crash-reports")
    assert not store.is_granted("cloud-lookup") and store.is_granted("update-checks")
    app.shutdown()
    again = make_app(first_run=True, protection=False)
    again.start()
    qtbot.wait(200)
    assert "consent" not in again.windows, "the dialog shows only until choices are saved"


def _decoys_in(folder: Path) -> list[str]:
    from aegis_engine.own_files import is_decoy

    return sorted(p.name for p in folder.iterdir() if is_decoy(str(p)))


def test_decoys_are_planted_only_after_the_first_run_choices_are_saved(
    qtbot: Any, make_app: MakeApp, watched: Path
) -> None:
    app = make_app(first_run=True, monitor_factory=shielded_monitor)
    app.start()
    running(qtbot, app)  # protected from the start, the dialog still unanswered
    qtbot.waitUntil(lambda: isinstance(app.windows.get("consent"), ConsentDialog), timeout=60_000)
    assert app.protection.monitor is not None and app.protection.monitor.shield is not None
    assert _decoys_in(watched) == [], "no decoy before the choices are saved"
    dialog = app.windows["consent"]
    assert isinstance(dialog, ConsentDialog) and dialog.decoys is not None
    assert dialog.decoys.isChecked()
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(_decoys_in(watched)) == 1, timeout=120_000)
    running(qtbot, app)
    app.shutdown()
    assert _decoys_in(watched) == [], "removed when protection stops"
    # the next start (choices saved) plants them at once
    again = make_app(first_run=True, monitor_factory=shielded_monitor)
    again.start()
    running(qtbot, again)
    assert "consent" not in again.windows
    qtbot.waitUntil(lambda: len(_decoys_in(watched)) == 1, timeout=60_000)


def test_no_decoys_when_the_first_run_turns_them_off(
    qtbot: Any, make_app: MakeApp, watched: Path, aegis_paths: AegisPaths
) -> None:
    app = make_app(first_run=True, monitor_factory=shielded_monitor)
    app.start()
    running(qtbot, app)
    qtbot.waitUntil(lambda: isinstance(app.windows.get("consent"), ConsentDialog), timeout=60_000)
    dialog = app.windows["consent"]
    assert isinstance(dialog, ConsentDialog) and dialog.decoys is not None
    dialog.decoys.setChecked(False)
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: app.prefs.decoys is False, timeout=60_000)
    running(qtbot, app)
    qtbot.waitUntil(lambda: app.protection.live_monitors == 1, timeout=60_000)
    assert _decoys_in(watched) == []


def test_settings_toggles_persist(
    qtbot: Any, make_app: MakeApp, aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    extra = tmp_path / "more"
    extra.mkdir()
    app = make_app(protection=False, pick_folder=lambda _parent: str(extra))
    app.start()
    dialog = app.show_settings()
    assert isinstance(dialog, SettingsDialog)
    assert not dialog.consent_boxes["usage-stats"].isChecked()
    dialog.consent_boxes["usage-stats"].setChecked(True)
    dialog.consent_boxes["update-checks"].setChecked(False)
    dialog.realtime.setChecked(False)
    qtbot.mouseClick(dialog.folders.add_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(dialog.exclude_paths.add_button, Qt.MouseButton.LeftButton)
    dialog.schedule_on.setChecked(True)
    dialog.proxy.setText("http://proxy.example:3128")
    dialog.app_updates.setCurrentIndex(dialog.app_updates.findData("check"))
    dialog.buttons.button(dialog.buttons.StandardButton.Save).click()
    qtbot.waitUntil(lambda: aegis_paths.settings_file.exists(), timeout=60_000)
    qtbot.waitUntil(lambda: app.prefs.realtime is False, timeout=60_000)
    data = tomllib.loads(aegis_paths.settings_file.read_text())
    assert data["realtime"] == {"enabled": False, "folders": [str(extra)]}
    assert data["exclusions"]["paths"] == [f"{extra}/*"]
    assert data["schedule"]["enabled"] is True
    assert data["updates"]["proxy"] == "http://proxy.example:3128"
    assert data["updates"]["app"] == "check"
    store = ConsentStore.for_paths(aegis_paths)
    assert store.is_granted("usage-stats") and not store.is_granted("update-checks")
    assert app.protection.status is Status.OFF
    assert app.state is TrayState.PAUSED
    app.shutdown()
    # a new start reads it all back
    again = make_app(protection=False)
    again.start()
    reopened = again.show_settings()
    assert reopened.consent_boxes["usage-stats"].isChecked()
    assert not reopened.consent_boxes["update-checks"].isChecked()
    assert not reopened.realtime.isChecked()
    assert reopened.folders.items() == (str(extra),)
    assert reopened.schedule_on.isChecked()
    assert reopened.app_updates.currentData() == "check"
    preview = again.show_preview("usage-stats")
    assert "ON" in preview.text.toPlainText() and "counts" in preview.text.toPlainText()


# -- detections ---------------------------------------------------------------------------------


def test_realtime_eicar_quarantined_from_the_notification(
    qtbot: Any, make_app: MakeApp, watched: Path, aegis_paths: AegisPaths
) -> None:
    app, fake = notifying_app(make_app, protection=True)
    running(qtbot, app)
    assert app.state is TrayState.PROTECTED
    target = watched / "eicar.com"
    target.write_bytes(EICAR)
    qtbot.waitUntil(lambda: len(fake.sent) >= 1, timeout=120_000)
    nid, title, body, acts = fake.sent[0]
    assert "malicious" in title and "eicar.com" in body
    assert acts[0] == ("default", "Quarantine")
    assert [a[1] for a in acts] == ["Quarantine", "Allow", "Details"]
    assert app.state is TrayState.THREAT
    click(fake, nid, "default")
    alert = app.alerts.all()[0]
    qtbot.waitUntil(lambda: alert.state is AlertState.QUARANTINED, timeout=120_000)
    assert not target.exists()
    items = app.engine.quarantine.items()
    assert [it.original_path for it in items] == [str(target)]
    assert app.engine.quarantine.read_content(items[0].id) == EICAR
    qtbot.waitUntil(lambda: len(fake.sent) >= 2, timeout=60_000)
    assert "moved to the quarantine" in fake.sent[1][2], "the click is confirmed"
    events = app.engine.history.events()
    assert any(e.kind == "decision" and e.decision == "quarantine" for e in events)
    assert any(e.kind == "action" and e.outcome == "success" for e in events)
    qtbot.waitUntil(lambda: app.state is TrayState.PROTECTED, timeout=60_000)


def test_a_notification_service_slow_to_answer_at_login_is_asked_again(
    qtbot: Any, make_app: MakeApp, watched: Path
) -> None:
    """A session bus too busy to answer the first capability request (a login, a loaded
    machine) must not cost the session its notifications with the Quarantine button: the
    probe is retried, and a threat found meanwhile is still shown as a notification."""
    fake = FakeNotifications(unanswered=1)
    app = make_app(notifications=fake)
    app.start()
    running(qtbot, app)
    (watched / "eicar.com").write_bytes(EICAR)
    qtbot.waitUntil(lambda: app.notifier.mode == "dbus", timeout=60_000)
    qtbot.waitUntil(lambda: len(fake.sent) >= 1, timeout=120_000)
    _nid, title, body, acts = fake.sent[0]
    assert "malicious" in title and "eicar.com" in body
    assert acts[0] == ("default", "Quarantine")


def test_quarantine_from_the_alert_window(qtbot: Any, make_app: MakeApp, watched: Path) -> None:
    app = make_app()  # no notifications, no tray: the alert window opens by itself
    app.start()
    running(qtbot, app)
    target = watched / "dropped.txt"
    target.write_bytes(EICAR)
    dialog = first_dialog(qtbot, app, timeout=120_000)
    assert isinstance(dialog, AlertDialog) and dialog.isVisible()
    assert "dropped.txt" in dialog.title.text()
    assert "EICAR" in dialog.explanation.toPlainText()
    assert "will quarantine it in" in dialog.state.text()
    qtbot.mouseClick(dialog.quarantine_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.alert.state is AlertState.QUARANTINED, timeout=120_000)
    assert not target.exists()
    assert not dialog.quarantine_button.isEnabled()
    assert "Quarantined" in dialog.state.text()


def test_alert_for_a_file_gone_or_changed_resolves_itself(
    qtbot: Any, make_app: MakeApp, tmp_path: Path
) -> None:
    app, _ = notifying_app(make_app)
    app.notifier.prompt_timeout = 600
    gone = tmp_path / "gone.com"
    changed = tmp_path / "changed.com"
    first, second = alerts_for(qtbot, app, eicar_detection(gone), eicar_detection(changed))
    assert app.alerts.open_count == 2
    assert app.situation().open_alerts == 2
    gone.unlink()
    app.answer(first.id, "quarantine")  # fails: the file does not exist
    qtbot.waitUntil(lambda: first.state is AlertState.RESOLVED, timeout=60_000)
    assert "no longer exists" in first.message
    changed.write_bytes(b"the user replaced it with a harmless text of the same size" + b"." * 9)
    qtbot.waitUntil(lambda: second.state is AlertState.RESOLVED, timeout=60_000)  # by the timer
    assert "changed" in second.message
    assert app.alerts.open_count == 0
    state, detail = describe(app.situation())
    assert state is not TrayState.THREAT and "decision" not in detail
    qtbot.waitUntil(
        lambda: len([e for e in app.engine.history.events() if e.action == "resolve"]) == 2,
        timeout=60_000,
    )
    lines = [e.message for e in app.engine.history.events() if e.action == "resolve"]
    assert sorted(lines) == ["the file no longer exists", "the file was changed since it was found"]


def test_unanswered_prompt_gets_the_policy_default(
    qtbot: Any, make_app: MakeApp, tmp_path: Path
) -> None:
    app, _ = notifying_app(make_app)
    app.notifier.prompt_timeout = 0.3
    malicious = tmp_path / "sig.bin"
    weak = tmp_path / "weak.bin"
    first, second = alerts_for(
        qtbot, app, eicar_detection(malicious), eicar_detection(weak, Verdict.SUSPICIOUS)
    )
    qtbot.waitUntil(
        lambda: first.state is AlertState.QUARANTINED and second.state is AlertState.KEPT,
        timeout=120_000,
    )
    assert not malicious.exists(), "signature-grade malicious: the policy quarantines"
    assert weak.exists(), "one weak signal: the policy asks, so nothing is done unanswered"
    assert "No answer within" in second.message
    actions_seen = [e for e in app.engine.history.events() if e.kind == "action"]
    assert any(e.message and "No answer" in e.message for e in actions_seen)
    assert not any(e.kind == "decision" for e in app.engine.history.events())


def test_allow_adds_the_file_to_the_allowlist(
    qtbot: Any, make_app: MakeApp, tmp_path: Path, aegis_paths: AegisPaths
) -> None:
    app, fake = notifying_app(make_app)
    report = eicar_detection(tmp_path / "mine.bin")
    feed(app, report)
    qtbot.waitUntil(lambda: len(fake.sent) == 1, timeout=60_000)
    click(fake, fake.sent[0][0], "allow")
    alert = app.alerts.all()[0]
    qtbot.waitUntil(lambda: alert.state is AlertState.ALLOWED, timeout=60_000)
    data = tomllib.loads(aegis_paths.settings_file.read_text())
    assert data["exclusions"]["sha256"] == [report.sha256]
    assert app.engine.decisions.decide_report(report).verdict is Verdict.CLEAN
    assert (tmp_path / "mine.bin").exists()


def test_details_opens_the_alert_and_keeps_the_deadline(
    qtbot: Any, make_app: MakeApp, tmp_path: Path
) -> None:
    app, fake = notifying_app(make_app)
    feed(app, eicar_detection(tmp_path / "x.bin"))
    qtbot.waitUntil(lambda: len(fake.sent) == 1, timeout=60_000)
    click(fake, fake.sent[0][0], "details")
    dialog = first_dialog(qtbot, app)
    assert app.notifier.deadline_ms(dialog.alert.id) is not None
    qtbot.mouseClick(dialog.allow_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.alert.state is AlertState.ALLOWED, timeout=60_000)
    assert app.notifier.deadline_ms(dialog.alert.id) is None


def test_the_tray_menu_and_the_status_window_start_and_open_the_same_things(
    qtbot: Any, make_app: MakeApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Their shared entries (scans, Alerts, Quarantine, Settings) are wired to the app in
    one place: each does the same from either."""
    app = make_app(tray=True, protection=False)
    app.start()
    assert app.tray is not None
    small = tmp_path / "small"
    small.mkdir()
    (small / "note.txt").write_text("hello")
    monkeypatch.setattr(app.scan_view, "targets", lambda _kind: [str(small)])
    picked: list[str] = []
    monkeypatch.setattr(app.scan_view, "scan_folder", lambda: picked.append("folder"))
    kinds: list[str] = []
    app.scans.started.connect(lambda _sid, _targets, kind: kinds.append(kind))
    for source in (app.tray, app.show_status()):
        for window in (app.alert_view.window, app.vault.window, app.windows.get("settings")):
            if window is not None:
                window.close()
        source.open_alerts.emit()
        source.open_quarantine.emit()
        source.open_settings.emit()
        assert app.alert_view.window is not None and app.alert_view.window.isVisible()
        assert app.vault.window is not None and app.vault.window.isVisible()
        assert isinstance(app.windows.get("settings"), SettingsDialog)
        assert app.windows["settings"].isVisible()
        source.scan_folder.emit()
        for kind in ("quick", "full"):
            getattr(source, f"{kind}_scan").emit()
            qtbot.waitUntil(lambda: not app.scans.running, timeout=120_000)
    assert kinds == ["quick", "full", "quick", "full"]
    assert picked == ["folder", "folder"]


# -- quarantine window --------------------------------------------------------------------------


def _quarantined(app: TrayApp, path: Path) -> str:
    path.write_bytes(EICAR)
    os.chmod(path, 0o640)
    return app.engine.quarantine.quarantine(path, verdict="malicious").id


def test_restore_from_the_quarantine_window(qtbot: Any, make_app: MakeApp, tmp_path: Path) -> None:
    app = make_app(protection=False)
    app.start()
    original = tmp_path / "report.doc"
    item_id = _quarantined(app, original)
    assert not original.exists()
    window = app.show_quarantine()
    qtbot.waitUntil(lambda: len(window.items) == 1, timeout=60_000)
    asked: list[str] = []
    window.confirm = lambda _w, title, _text: asked.append(title) is None
    window.select(item_id)
    assert window.restore_button.isEnabled()
    qtbot.mouseClick(window.restore_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Restored to" in window.status.text(), timeout=60_000)
    assert asked == ["Restore and allow this file?"]
    assert original.read_bytes() == EICAR
    report = app.engine.scan_file(str(original))
    assert report is not None
    assert not app.engine.outcomes.decide(report).verdict.is_threat, "restored and allowed"
    assert oct(original.stat().st_mode & 0o777) == "0o640"
    qtbot.waitUntil(lambda: window.items == [], timeout=60_000)
    assert window.empty.isVisible() or not window.isVisible()
    events = app.engine.history.events()
    assert [
        (e.kind, e.decision or e.outcome) for e in events if "restore" in (e.action, e.decision)
    ] == [
        ("decision", "restore"),
        ("action", "success"),
    ]


def test_restore_only_leaves_the_file_flagged(
    qtbot: Any, make_app: MakeApp, tmp_path: Path
) -> None:
    app = make_app(protection=False)
    app.start()
    original = tmp_path / "keep-checking.com"
    item_id = _quarantined(app, original)
    window = app.show_quarantine()
    qtbot.waitUntil(lambda: len(window.items) == 1, timeout=60_000)
    window.confirm = lambda *_a: True
    window.select(item_id)
    qtbot.mouseClick(window.restore_only_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Restored to" in window.status.text(), timeout=60_000)
    assert "not allowed" in window.status.text()
    assert original.read_bytes() == EICAR
    report = app.engine.scan_file(str(original))
    assert report is not None
    assert app.engine.outcomes.decide(report).verdict.is_threat, "restore only: still flagged"


def test_restore_never_overwrites_and_delete_asks_first(
    qtbot: Any, make_app: MakeApp, tmp_path: Path
) -> None:
    app = make_app(protection=False)
    app.start()
    original = tmp_path / "a.txt"
    first = _quarantined(app, original)
    original.write_text("a new file with the same name")
    second = _quarantined(app, tmp_path / "b.txt")
    window = app.show_quarantine()
    qtbot.waitUntil(lambda: len(window.items) == 2, timeout=60_000)
    window.confirm = lambda *_a: True
    window.select(first)
    qtbot.mouseClick(window.restore_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Restored to" in window.status.text(), timeout=60_000)
    assert original.read_text() == "a new file with the same name"
    assert (tmp_path / "a (restored).txt").read_bytes() == EICAR
    qtbot.waitUntil(lambda: len(window.items) == 1, timeout=60_000)
    window.confirm = lambda *_a: False
    window.select(second)
    qtbot.mouseClick(window.delete_button, Qt.MouseButton.LeftButton)
    qtbot.wait(300)
    assert len(app.engine.quarantine.items()) == 1, "declined: nothing deleted"
    window.confirm = lambda *_a: True
    qtbot.mouseClick(window.delete_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Deleted for good" in window.status.text(), timeout=60_000)
    assert app.engine.quarantine.items() == []


# -- scans --------------------------------------------------------------------------------------


def test_scan_finds_eicar_and_quarantines_from_the_results(
    qtbot: Any, make_app: MakeApp, tmp_path: Path
) -> None:
    folder = tmp_path / "scanme"
    folder.mkdir()
    for i in range(20):
        (folder / f"clean{i}.txt").write_text(f"hello {i}")
    (folder / "eicar.com").write_bytes(EICAR)
    app = make_app(protection=False, pick_folder=lambda _p: str(folder))
    app.start()
    window = app.show_scan()
    qtbot.mouseClick(
        window.findChild(type(window.done_button), "scan-folder"), Qt.MouseButton.LeftButton
    )
    qtbot.waitUntil(lambda: not app.scans.running and window.scan_id is None, timeout=120_000)
    assert window.title.text() == "Threats found"
    assert window.count_labels["files"].text().startswith("21")
    assert window.results.rowCount() == 1
    assert app.state is TrayState.THREAT
    window.results.selectRow(0)
    qtbot.mouseClick(window.quarantine_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.found[0].state is AlertState.QUARANTINED, timeout=120_000)
    assert window.results.item(0, 3).text() == "Quarantined"
    assert window.title.text() == "Threats handled", "no stale 'Threats found'"
    assert not (folder / "eicar.com").exists()
    assert app.state is not TrayState.THREAT


def test_scan_cancel(qtbot: Any, make_app: MakeApp, tmp_path: Path) -> None:
    folder = tmp_path / "many"
    for d in range(40):
        sub = folder / f"d{d}"
        sub.mkdir(parents=True)
        for i in range(100):
            (sub / f"f{i}.bin").write_bytes(os.urandom(2048))
    app = make_app(protection=False)
    app.start()
    window = app.show_scan()
    scan_id = app.start_scan("folder", [str(folder)])
    assert scan_id is not None
    assert app.start_scan("folder", [str(folder)]) is None, "one scan at a time"
    qtbot.waitUntil(lambda: window.files > 0, timeout=120_000)
    qtbot.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
    assert window.current.full_text() == "Cancelling…"
    qtbot.waitUntil(lambda: not app.scans.running, timeout=120_000)
    summary = app.scans.last_summary
    assert summary is not None and summary.cancelled
    assert summary.files < 4000
    assert window.title.text() == "Scan cancelled"
    assert window.done_button.isVisible() and not window.cancel_button.isVisible()
    if window.total:  # the bar shows where it stopped, not "0%"
        assert window.bar.maximum() == window.total
        assert window.bar.value() == min(summary.files, window.total)
    else:
        assert not window.bar.isTextVisible()


# -- protection, updates ------------------------------------------------------------------------


def test_pause_and_resume(qtbot: Any, make_app: MakeApp, watched: Path) -> None:
    app = protected_app(qtbot, make_app)
    assert app.protection.folders == [str(watched)]
    app.protection.pause(3600)
    assert app.protection.status is Status.PAUSED and app.state is TrayState.PAUSED
    assert app.protection.pause_remaining_ms() is not None
    status = app.show_status()
    assert status.headline.text() == "Real-time protection is paused", "paused, not off"
    app.protection.resume()
    running(qtbot, app)
    assert app.state is TrayState.PROTECTED
    assert status.headline.text() == "You are protected"


def test_check_for_updates_asks_consent_and_says_why_it_failed(
    qtbot: Any, make_app: MakeApp, aegis_paths: AegisPaths
) -> None:
    app, fake = notifying_app(make_app)
    qtbot.waitUntil(lambda: app.notifier.mode == "dbus", timeout=60_000)
    app.check_updates()
    assert app.updating
    qtbot.waitUntil(lambda: not app.updating, timeout=60_000)
    # the notification follows through the event loop: wait for it, not for a moment
    qtbot.waitUntil(
        lambda: bool(fake.sent) and "no update server is configured" in fake.sent[-1][2],
        timeout=60_000,
    )
    assert fake.icons[-1].endswith("shield-protected.svg"), "not the red threat icon"
    ConsentStore.for_paths(aegis_paths).revoke("update-checks")
    app.check_updates()
    qtbot.waitUntil(lambda: not app.updating, timeout=60_000)
    qtbot.waitUntil(lambda: "Update checks are off" in fake.sent[-1][2], timeout=60_000)


def test_a_due_scheduled_scan_runs_and_reports(
    qtbot: Any, make_app: MakeApp, tmp_path: Path
) -> None:
    from dataclasses import replace
    from datetime import datetime, timedelta

    from aegis_gui.schedule import Schedule

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "eicar.txt").write_bytes(EICAR)
    app, fake = notifying_app(make_app)
    qtbot.waitUntil(lambda: app.notifier.mode == "dbus", timeout=60_000)
    prefs = replace(
        app.prefs, folders=(str(folder),), schedule=Schedule(enabled=True, frequency="daily")
    )
    app.apply_preferences(prefs, restart_protection=False)
    due = app.scan_view.next_scheduled
    assert due is not None
    app.scan_view.check_schedule(due - timedelta(minutes=1))
    assert not app.scans.running, "not due yet"
    app.scan_view.check_schedule(due)
    assert app.scans.running and app.scans.kind == "scheduled"
    assert app.scan_view.next_scheduled == due + timedelta(days=1)
    qtbot.waitUntil(lambda: not app.scans.running, timeout=120_000)
    # the notification follows the scan's end through the event loop: wait for it
    qtbot.waitUntil(
        lambda: any("scan found threats" in sent[1] for sent in fake.sent), timeout=60_000
    )
    qtbot.waitUntil(lambda: app.state is TrayState.THREAT, timeout=60_000)
    assert datetime.now() < due + timedelta(days=2)


# -- live lists (issue 16, item 6) ---------------------------------------------------------------


def _history_statuses(window: Any) -> list[str]:
    return [r.status for r in window.rows if not r.alert_id]


def test_alerts_and_history_follow_a_restore_without_refresh(
    qtbot: Any, make_app: MakeApp, tmp_path: Path
) -> None:
    app = make_app(protection=False)
    app.start()
    item_id = _quarantined(app, tmp_path / "wanted.doc")
    alerts = app.show_alerts()
    vault = app.show_quarantine()
    qtbot.waitUntil(lambda: len(vault.items) == 1, timeout=60_000)
    assert "Restored" not in _history_statuses(alerts)
    vault.confirm = lambda *_a: True
    vault.select(item_id)
    qtbot.mouseClick(vault.restore_button, Qt.MouseButton.LeftButton)
    # no Refresh clicked: the history shows the decision and the restore
    qtbot.waitUntil(lambda: "Restored" in _history_statuses(alerts), timeout=60_000)
    assert "You chose: restore" in _history_statuses(alerts)


def test_windows_follow_changes_made_by_another_process(
    qtbot: Any, make_app: MakeApp, tmp_path: Path, aegis_paths: AegisPaths
) -> None:
    """The CLI or the monitor service restores an item: both windows follow, no Refresh."""
    from aegis_engine import Engine

    app = make_app(protection=False)
    app.start()
    item_id = _quarantined(app, tmp_path / "elsewhere.doc")
    vault = app.show_quarantine()
    alerts = app.show_alerts()
    qtbot.waitUntil(lambda: len(vault.items) == 1, timeout=60_000)
    other = Engine(aegis_paths)  # the same profile, as `aegis quarantine restore` opens it
    try:
        other.outcomes.restore(item_id)
    finally:
        other.close()
    qtbot.waitUntil(lambda: vault.items == [], timeout=60_000)
    qtbot.waitUntil(lambda: "Restored" in _history_statuses(alerts), timeout=60_000)


def test_quarantined_rows_show_when_it_was_quarantined(
    qtbot: Any, make_app: MakeApp, tmp_path: Path
) -> None:
    import dataclasses
    import time

    from aegis_gui.format import local_time
    from aegis_gui.notifications import QUARANTINE

    app = make_app(protection=False)
    app.start()
    report = eicar_detection(tmp_path / "found-earlier.com")
    found = time.time() - 2 * 3600  # detected two hours ago, answered now
    det = dataclasses.replace(detection.assess(app.engine, report, "real-time"), time=found)
    t = threading.Thread(target=app.bridge.on_detection, args=(det,))
    t.start()
    t.join()
    qtbot.waitUntil(lambda: len(app.alerts.all()) == 1, timeout=60_000)
    alert = app.alerts.all()[0]
    alerts = app.show_alerts()
    app.answer(alert.id, QUARANTINE)
    qtbot.waitUntil(lambda: alert.state is AlertState.QUARANTINED, timeout=60_000)

    def quarantined_rows() -> list[Any]:  # the alert's row, or the history's once it has it
        mine = (alert.id, alert.item_id)
        return [
            r
            for r in alerts.rows
            if r.status == "Quarantined" and (r.alert_id in mine or r.item_id in mine)
        ]

    qtbot.waitUntil(lambda: len(quarantined_rows()) == 1, timeout=60_000)
    row = quarantined_rows()[0]
    assert row.when >= found + 3600, "the row shows the quarantine, not the detection"
    vault = app.show_quarantine()
    qtbot.waitUntil(lambda: len(vault.items) == 1, timeout=60_000)
    item = vault.items[0]
    assert item.quarantined_at.timestamp() >= found + 3600
    cell = vault.table.item(0, 0)
    assert cell is not None and cell.text() == local_time(item.quarantined_at)
    assert cell.text() != local_time(found)


# -- pause catch-up (issue 16, item 3) -----------------------------------------------------------


def _alert_paths(app: TrayApp) -> set[str]:
    return {a.detection.path for a in app.alerts.all()}


def _stop_protection(qtbot: Any, app: TrayApp, since: float, stop: Callable[[], None]) -> None:
    """Stop protection with ``stop`` once the clock is past ``since`` (the stop is recorded
    MARGIN_S early), then wait until it is recorded and the monitor has really stopped (it
    stops in the background: until it has, it would still see the writes)."""
    import time

    from aegis_gui.catch_up import MARGIN_S

    qtbot.waitUntil(lambda: time.time() > since + MARGIN_S + 1, timeout=60_000)
    stop()
    qtbot.waitUntil(lambda: app.catch_up.paused_since() is not None, timeout=60_000)
    qtbot.waitUntil(lambda: app.protection.live_monitors == 0, timeout=60_000)


def _restart_until_found(
    qtbot: Any, app: TrayApp, restart: Callable[[], None], threat: Path
) -> list[list[str]]:
    """Restart protection with ``restart``; wait for the catch-up's alert on ``threat``.
    What the catch-up was given to check."""
    checked: list[list[str]] = []
    app.catch_up.checking.connect(checked.append)
    restart()
    running(qtbot, app)
    qtbot.waitUntil(lambda: str(threat) in _alert_paths(app), timeout=120_000)
    return checked


def _catch_up_finished(qtbot: Any, app: TrayApp) -> None:
    """Wait until the catch-up's scan has ended and the pause is no longer on record."""
    qtbot.waitUntil(lambda: not app.scans.running, timeout=120_000)
    qtbot.waitUntil(lambda: app.catch_up.paused_since() is None, timeout=60_000)


def test_files_written_during_a_pause_are_checked_on_resume(
    qtbot: Any, make_app: MakeApp, watched: Path
) -> None:
    old = watched / "old-notes.txt"
    old.write_text("written before the pause")
    app = protected_app(qtbot, make_app)
    _stop_protection(qtbot, app, os.stat(old).st_ctime, lambda: app.protection.pause(3600))
    threat = watched / "sneaked-in.com"
    threat.write_bytes(EICAR)
    clean = watched / "letter.txt"
    clean.write_text("hello")
    checked = _restart_until_found(qtbot, app, app.protection.resume, threat)
    assert sorted(checked[0]) == sorted([str(threat), str(clean)]), "only what changed"
    alert = next(a for a in app.alerts.all() if a.detection.path == str(threat))
    assert alert.detection.source == "scan"  # the scan service, its outcome service
    _catch_up_finished(qtbot, app)
    assert app.scan_view.window is None or not app.scan_view.window.isVisible()
    events = app.engine.history.events()
    assert any(e.kind == "detection" and e.path == str(threat) for e in events)


def test_files_written_while_protection_was_switched_off_are_checked_when_it_is_back_on(
    qtbot: Any, make_app: MakeApp, watched: Path
) -> None:
    import time
    from dataclasses import replace

    app = protected_app(qtbot, make_app)

    def realtime(on: bool) -> Callable[[], None]:
        return lambda: app.apply_preferences(
            replace(app.prefs, realtime=on), restart_protection=True
        )

    _stop_protection(qtbot, app, time.time(), realtime(False))
    assert app.protection.status is Status.OFF
    threat = watched / "while-off.com"
    threat.write_bytes(EICAR)
    checked = _restart_until_found(qtbot, app, realtime(True), threat)
    assert checked and str(threat) in checked[0]
    _catch_up_finished(qtbot, app)


def test_a_pause_until_restart_is_caught_up_at_the_next_start(
    qtbot: Any, make_app: MakeApp, watched: Path
) -> None:
    first = protected_app(qtbot, make_app)
    first.protection.pause(None)
    qtbot.waitUntil(lambda: first.catch_up.paused_since() is not None, timeout=60_000)
    first.shutdown()
    threat = watched / "while-away.com"
    threat.write_bytes(EICAR)
    second = protected_app(qtbot, make_app)
    qtbot.waitUntil(lambda: str(threat) in _alert_paths(second), timeout=120_000)
    qtbot.waitUntil(lambda: second.catch_up.paused_since() is None, timeout=120_000)


def test_a_catch_up_that_cannot_run_says_so(
    qtbot: Any, make_app: MakeApp, watched: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aegis_gui import catch_up

    def broken(*_a: Any, **_k: Any) -> Any:
        raise OSError("disk unreadable")

    monkeypatch.setattr(catch_up, "files_changed_since", broken)
    app, fake = notifying_app(make_app, protection=True)
    running(qtbot, app)
    app.protection.pause(3600)
    (watched / "unchecked.com").write_bytes(EICAR)
    app.protection.resume()
    running(qtbot, app)
    qtbot.waitUntil(
        lambda: any("were not checked" in summary for _n, summary, _b, _a in fake.sent),
        timeout=60_000,
    )
    nid, _s, body, actions = next(n for n in fake.sent if "were not checked" in n[1])
    assert "disk unreadable" in body and "Quick scan" in body
    assert app.catch_up.paused_since() is not None, "kept: the next start tries again"
    # its button starts the Quick scan, which finds what the pause let in
    assert ("offer", "Quick scan") in actions and ("default", "Quick scan") in actions
    started: list[str] = []
    app.scans.started.connect(lambda _sid, _targets, kind: started.append(kind))
    fake.click(nid, "offer")
    qtbot.waitUntil(lambda: started == ["quick"], timeout=60_000)
    unchecked = str(watched / "unchecked.com")
    qtbot.waitUntil(lambda: unchecked in _alert_paths(app), timeout=120_000)
    _catch_up_finished(qtbot, app)


# -- every window fits the screen (issue 16, item 9) ---------------------------------------------


def test_every_window_the_app_opens_fits_the_available_screen(
    qtbot: Any, make_app: MakeApp, tmp_path: Path
) -> None:
    app = make_app(first_run=False, protection=False)
    app.start()
    [alert] = alerts_for(qtbot, app, eicar_detection(tmp_path / "eicar.com"))
    opened = [
        app.show_status(),
        app.show_alerts(),
        app.show_alert(alert.id),
        app.show_quarantine(),
        app.show_settings(),
        app.show_preview("cloud-lookup"),
        app.show_scan(),
        app.show_consent(),
    ]
    for window in opened:
        assert window is not None
        qtbot.waitExposed(window)
        available = window.screen().availableGeometry()
        assert available.contains(window.frameGeometry()), (
            window.objectName(),
            window.frameGeometry(),
            available,
        )
        assert window.frameGeometry().height() <= available.height()
