"""Every window on its own, offscreen: built from plain data, shown, its empty state and its
requests (signals); plus the tray menu."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QPushButton

from aegis_engine import (
    AegisPaths,
    FileReport,
    Finding,
    FindingKind,
    ObjectResult,
    ScanProgress,
    ScanSummary,
    Severity,
    Verdict,
)
from aegis_engine.decision import DecisionEngine
from aegis_engine.history import HistoryEvent
from aegis_engine.monitor import ProcessRef, RansomwareEvent
from aegis_engine.privacy import PURPOSES, ConsentStore
from aegis_engine.quarantine import VaultItem
from aegis_engine.status import aegis_version
from aegis_gui.alerts import Alert, AlertCenter, AlertState
from aegis_gui.detection import Detection
from aegis_gui.icons import TrayState
from aegis_gui.preferences import Preferences
from aegis_gui.tray import Tray
from aegis_gui.windows.alert_dialog import AlertDialog
from aegis_gui.windows.alerts import AlertsWindow
from aegis_gui.windows.consent import ConsentDialog
from aegis_gui.windows.preview import SendPreviewDialog
from aegis_gui.windows.quarantine import QuarantineWindow
from aegis_gui.windows.ransomware import RansomwareWindow
from aegis_gui.windows.scan import ScanWindow
from aegis_gui.windows.settings import SettingsDialog
from aegis_gui.windows.status import StatusWindow

SHA = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"


def detection(path: str = "/home/u/Downloads/eicar.com", source: str = "real-time") -> Detection:
    finding = Finding("eicar", "EICAR-Test-File", Severity.MALICIOUS, kind=FindingKind.SIGNATURE)
    obj = ObjectResult(path, Verdict.MALICIOUS, [finding], sha256=SHA, size=68)
    report = FileReport(path, Verdict.MALICIOUS, [obj], sha256=SHA, size=68)
    return Detection(report, DecisionEngine().decide_report(report), source)


def vault_item(item_id: str = "3f2a9c0d11223344", name: str = "eicar.com") -> VaultItem:
    return VaultItem(
        id=item_id,
        original_path=f"/home/u/Downloads/{name}",
        size=68,
        sha256=SHA,
        mode=0o100644,
        uid=1000,
        gid=1000,
        owner="u",
        atime_ns=0,
        mtime_ns=0,
        ctime_ns=0,
        quarantined_at=datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
        detections=({"name": "EICAR-Test-File", "detector": "eicar"},),
        explanation=("Verdict malicious: signature-grade finding.",),
    )


def test_status_window(qtbot: Any) -> None:
    w = StatusWindow(standalone=True)
    qtbot.addWidget(w)
    w.show()
    w.set_status(TrayState.PROTECTED, "Real-time protection is on (3 folders watched).")
    assert w.headline.text() == "You are protected"
    assert w.quit_button.isVisible(), "without a tray the window offers Quit"
    w.set_open_alerts(2)
    assert w.buttons["alerts"].text() == "Alerts (2)"
    with qtbot.waitSignal(w.quick_scan):
        qtbot.mouseClick(w.buttons["quick"], Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(w.full_scan):
        qtbot.mouseClick(w.buttons["full"], Qt.MouseButton.LeftButton)
    assert "Scan window" not in [b.text() for b in w.buttons.values()]
    w.set_paused(True)
    assert w.pause_button.text() == "Resume protection"


def test_consent_dialog_lists_every_purpose_off(qtbot: Any, aegis_paths: AegisPaths) -> None:
    store = ConsentStore.for_paths(aegis_paths)
    d = ConsentDialog(store)
    qtbot.addWidget(d)
    d.show()
    assert list(d.boxes) == [p.id for p in PURPOSES]
    assert [pid for pid, box in d.boxes.items() if box.isChecked()] == ["update-checks"]
    shown = "\n".join(lbl.text() for lbl in d.findChildren(QLabel))
    assert "SHA-256 fingerprint" in shown and "full content of the detected file" in shown
    assert "Never sends" in shown
    d.reject()
    assert not store.reviewed, "closing without saving keeps asking next time"


def test_preview_dialog(qtbot: Any, aegis_paths: AegisPaths) -> None:
    d = SendPreviewDialog(ConsentStore.for_paths(aegis_paths), "sample-submission")
    qtbot.addWidget(d)
    d.show()
    assert "Send detected samples" in d.text.toPlainText()
    d.purpose.setCurrentIndex(d.purpose.findData("crash-reports"))
    assert "traceback" in d.text.toPlainText()


def test_settings_dialog_tabs_and_validation(
    qtbot: Any, aegis_paths: AegisPaths, monkeypatch: Any
) -> None:
    store = ConsentStore.for_paths(aegis_paths)
    d = SettingsDialog(Preferences(), store, ["/home/u/Downloads"], pick_folder=lambda _p: "/x")
    qtbot.addWidget(d)
    d.show()
    assert [d.tabs.tabText(i) for i in range(d.tabs.count())] == [
        "Protection",
        "Exclusions",
        "Scheduled scans",
        "Privacy",
        "Updates",
    ]
    assert d.folders.empty.isVisible() or not d.folders.isVisible()
    assert not d.frequency.isEnabled(), "schedule fields follow the checkbox"
    d.schedule_on.setChecked(True)
    assert d.frequency.isEnabled() and d.weekday.isEnabled()
    d.frequency.setCurrentIndex(d.frequency.findData("daily"))
    assert not d.weekday.isEnabled()
    shown: list[str] = []
    monkeypatch.setattr(
        "aegis_gui.windows.settings.QMessageBox.warning", lambda *a: shown.append(a[2])
    )
    d.server.setText("http://insecure.example")
    saved: list[object] = []
    d.saved.connect(saved.append)
    d.accept()
    assert saved == [] and shown and "https" in shown[0]
    assert not store.reviewed, "nothing is stored when the settings are invalid"
    with qtbot.waitSignal(d.preview_requested) as sig:
        d.findChild(QPushButton, "preview-usage-stats").click()
    assert sig.args == ["usage-stats"]


def test_alerts_window_filters_and_explains(qtbot: Any) -> None:
    w = AlertsWindow()
    qtbot.addWidget(w)
    w.show()
    assert w.empty.isVisible() and "No alerts yet" in w.empty.text()
    center = AlertCenter()
    pending = center.add(detection())
    done = center.add(detection("/home/u/old.exe"))
    center.update(done.id, AlertState.QUARANTINED, item_id="abcd")
    history = [
        HistoryEvent(
            1,
            datetime(2026, 11, 1, 9, 0, tzinfo=UTC),
            "action",
            "/home/u/x",
            action="restore",
            outcome="success",
            item_id="beef",
        )
    ]
    w.set_data(center.all(), history)
    assert len(w.rows) == 3
    assert w.rows[0].alert_id == pending.id, "what waits for you comes first"
    w.filter.setCurrentIndex(w.filter.findData("open"))
    assert [r.alert_id for r in w.rows] == [pending.id]
    w.table.selectRow(0)
    assert "EICAR-Test-File" in w.explanation.toPlainText()
    assert w.quarantine_button.isEnabled()
    with qtbot.waitSignal(w.choice) as sig:
        qtbot.mouseClick(w.quarantine_button, Qt.MouseButton.LeftButton)
    assert sig.args == [pending.id, "quarantine"]
    w.filter.setCurrentIndex(w.filter.findData("action"))
    assert [r.status for r in w.rows] == ["Restored"], "plain words, not 'Restore: success'"
    w.filter.setCurrentIndex(0)
    w.search.setText("old.exe")
    assert [r.alert_id for r in w.rows] == [done.id]
    w.search.setText("nothing-like-this")
    assert w.empty.isVisible() and w.empty.text() == "Nothing matches this filter."


def test_alert_dialog_countdown_and_buttons(qtbot: Any) -> None:
    alert = Alert("A1", detection())
    d = AlertDialog(alert, lambda _id: 95_000)
    qtbot.addWidget(d)
    d.show()
    assert "will quarantine it in 1 min 35 s" in d.state.text()
    with qtbot.waitSignal(d.choice) as sig:
        qtbot.mouseClick(d.allow_button, Qt.MouseButton.LeftButton)
    assert sig.args == ["A1", "allow"]
    alert.state = AlertState.QUARANTINED
    alert.message = "moved"
    d.refresh()
    assert not d.quarantine_button.isEnabled() and not d.allow_button.isEnabled()


def test_quarantine_window(qtbot: Any) -> None:
    answers = [False, True]
    w = QuarantineWindow(confirm=lambda *_a: answers.pop(0), pick_dir=lambda _p: "/restore/here")
    qtbot.addWidget(w)
    w.show()
    assert w.empty.isVisible() and not w.restore_button.isEnabled()
    w.set_items([vault_item(), vault_item("aa00aa00aa00aa00", "other.bin")])
    assert w.table.rowCount() == 2 and not w.empty.isVisible()
    w.select("3f2a9c0d11223344")
    assert "Was at: /home/u/Downloads/eicar.com" in w.details.toPlainText()
    details = w.details.toPlainText()
    assert "mode 0o" not in details and "Item 3f2a" not in details, "plain words first"
    assert "Permissions:" in details and "Quarantine ID: 3f2a9c0d11223344" in details
    requests: list[tuple[str, str, bool]] = []
    w.restore_requested.connect(lambda i, d, a: requests.append((i, d, a)))
    qtbot.mouseClick(w.restore_button, Qt.MouseButton.LeftButton)  # declined
    qtbot.mouseClick(w.restore_to_button, Qt.MouseButton.LeftButton)  # accepted
    assert requests == [("3f2a9c0d11223344", "/restore/here", True)]
    answers.append(True)
    qtbot.mouseClick(w.restore_only_button, Qt.MouseButton.LeftButton)
    assert requests[-1] == ("3f2a9c0d11223344", "", False), "Restore only does not allow"
    w.notice("Restored to /home/u/Downloads/eicar.com.")
    w.set_items([vault_item(), vault_item("bb00bb00bb00bb00", "new.bin")])
    assert w.status.text() == "", "a new item clears the last notice"


def test_scan_window_progress_and_results(qtbot: Any) -> None:
    w = ScanWindow()
    qtbot.addWidget(w)
    w.show()
    assert w.pages.currentIndex() == 0
    with qtbot.waitSignal(w.start_requested) as sig:
        qtbot.mouseClick(w.findChild(QPushButton, "scan-full"), Qt.MouseButton.LeftButton)
    assert sig.args == ["full"]
    w.scan_started(1, ["/home/u"], "full")
    assert w.pages.currentIndex() == 1 and w.bar.maximum() == 0, "busy until counted"
    w.scan_counted(1, 200)
    w.scan_progress(1, ScanProgress(50, 5000, 0, "/home/u/a.txt"))
    assert w.bar.value() == 50 and w.count_labels["files"].text() == "50 of 200"
    assert w.current.full_text() == "/home/u/a.txt"
    alert = Alert("A1", detection("/home/u/b.exe", "scan"))
    w.scan_found(alert)
    incomplete = detection("/home/u/big.iso", "scan")
    w.scan_found(incomplete)
    assert w.results.rowCount() == 2
    w.results.selectRow(0)
    assert w.quarantine_button.isEnabled()
    with qtbot.waitSignal(w.cancel_requested):
        qtbot.mouseClick(w.cancel_button, Qt.MouseButton.LeftButton)
    w.scan_finished(1, ScanSummary(files=120, threats=1, cancelled=True, seconds=3.0))
    assert w.title.text() == "Scan cancelled" and "120 files" in w.summary.text()
    assert w.done_button.isVisible()
    assert "Last scan: scan cancelled" in w.last_result.text()
    assert w.bar.maximum() == 200 and w.bar.value() == 120, "cancelled: where it stopped"
    assert w.results.item(1, 4) is not None, "the reason has its own column"
    w.scan_started(2, ["/home/u/Downloads"], "quick")
    assert w.no_results.text() == "Nothing found so far."
    w.scan_finished(2, ScanSummary(files=10, threats=0, seconds=1.0))
    assert w.title.text() == "No threats found" and w.no_results.text() == "Nothing found."


def test_ransomware_window(qtbot: Any) -> None:
    event = RansomwareEvent(
        incident="R1",
        action="suspended",
        path="/home/u/Documents",
        processes=(ProcessRef(4242, "evil", "/tmp/evil", "suspended"),),
        files=("/home/u/Documents/a.docx",),
        files_total=1,
        explanation="12 files rewritten with random-looking content in 2 s.",
    )
    w = RansomwareWindow(event)
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.choice) as sig:
        qtbot.mouseClick(w.kill_button, Qt.MouseButton.LeftButton)
    assert sig.args == ["R1", "kill"]
    assert not w.resume_button.isEnabled()


def test_tray_menu_and_states(qtbot: Any) -> None:
    tray = Tray()
    labels = [a.text() for a in tray.menu.actions() if not a.isSeparator()]
    assert labels[0].startswith("Aegis: ")
    assert labels[1:] == [
        "Scan a folder…",
        "Quick scan",
        "Full scan",
        "Pause protection",
        "Resume protection",
        "Alerts",
        "Quarantine",
        "Settings",
        "Check for updates",
        f"Aegis {aegis_version()}",
        "Quit",
    ]
    assert not tray.version_action.isEnabled()  # information, not a command
    full = next(a for a in tray.menu.actions() if a.text() == "Full scan")
    with qtbot.waitSignal(tray.full_scan):
        full.trigger()
    pauses = [a.text() for a in tray.pause_menu.actions()]
    assert pauses == ["For 15 minutes", "For 1 hour", "Until Aegis restarts"]
    got: list[object] = []
    tray.pause.connect(got.append)
    tray.pause_menu.actions()[0].trigger()
    tray.pause_menu.actions()[2].trigger()
    assert got == [900, None]
    with qtbot.waitSignal(tray.quit):
        tray.menu.actions()[-1].trigger()
    for state in TrayState:
        tray.set_state(state, "detail line")
        assert not tray.icon.icon().isNull()
        assert tray.icon.toolTip().startswith("Aegis — ") and "detail line" in tray.icon.toolTip()
    tray.set_paused(True)
    assert tray.resume_action.isVisible() and not tray.pause_menu.menuAction().isVisible()
    tray.set_open_alerts(3)
    assert tray.alerts_action.text() == "Alerts (3 waiting)"


def test_engine_never_imports_qt(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys, aegis_engine, aegis_engine.monitor, aegis_engine.privacy, "
        "aegis_engine.cli; bad = [m for m in sys.modules if m.startswith(('PySide6', "
        "'aegis_gui', 'shiboken6'))]; assert not bad, bad"
    )
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", code], check=True, timeout=120, cwd=Path(__file__).parents[1]
    )
    assert time.monotonic() - started < 120


def test_preview_dialog_shows_next_and_sent(qtbot: Any, aegis_paths: AegisPaths) -> None:
    from aegis_engine.privacy.outbox import Outbox
    from aegis_engine.privacy.sentlog import SentLog

    store = ConsentStore.for_paths(aegis_paths)
    store.grant("crash-reports")
    Outbox.for_paths(aegis_paths).add("crash-reports", {"error_type": "ValueError"})
    SentLog.for_paths(aegis_paths).record(
        "crash-reports", "POST", "https://c.example/v1/logs", 120, 200, {"resourceLogs": []}
    )
    d = SendPreviewDialog(store, "crash-reports", paths=aegis_paths)
    qtbot.addWidget(d)
    d.show()
    assert [d.tabs.tabText(i) for i in range(d.tabs.count())] == [
        "What it sends",
        "Next to be sent",
        "Sent",
    ]
    assert '"stringValue":"ValueError"' in d.next_text.toPlainText()
    assert "https://c.example/v1/logs" in d.sent_text.toPlainText()
    d.purpose.setCurrentIndex(d.purpose.findData("usage-stats"))
    assert "Nothing is waiting" in d.next_text.toPlainText()
    assert "Nothing has been sent" in d.sent_text.toPlainText()


def test_consent_dialog_says_update_checks_are_on_and_shows_them_without_scrolling(
    qtbot: Any, aegis_paths: AegisPaths
) -> None:
    from PySide6.QtWidgets import QLabel, QScrollArea

    from aegis_engine.privacy import DEFAULTS_SENTENCE

    d = ConsentDialog(ConsentStore.for_paths(aegis_paths))
    qtbot.addWidget(d)
    d.show()
    qtbot.waitExposed(d)
    texts = [w.text() for w in d.findChildren(QLabel)]
    assert any("update checks are on" in t.lower() for t in texts[:2]), texts[:2]
    assert any(DEFAULTS_SENTENCE in t for t in texts)
    box = d.boxes["update-checks"]
    assert box.isChecked()
    viewport = d.findChild(QScrollArea).viewport()
    top_left = box.mapTo(viewport, box.rect().topLeft())
    bottom = box.mapTo(viewport, box.rect().bottomLeft())
    assert top_left.y() >= 0 and bottom.y() <= viewport.height(), "visible without scrolling"


# -- issue 16, items 7 and 9: plain words, paths that keep their file name, windows that fit --


def test_privacy_settings_say_what_is_sent_in_plain_words(
    qtbot: Any, aegis_paths: AegisPaths
) -> None:
    d = SettingsDialog(Preferences(), ConsentStore.for_paths(aegis_paths), [])
    qtbot.addWidget(d)
    d.tabs.setCurrentIndex(3)
    d.show()
    lines = {p.id: d.findChild(QLabel, f"sends-{p.id}") for p in PURPOSES}
    assert all(label is not None for label in lines.values())
    texts = {pid: label.text() for pid, label in lines.items() if label is not None}
    for pid, text in texts.items():
        fields = next(p for p in PURPOSES if p.id == pid).sends
        for f in fields:  # no data-field names (aegis_version, sha256, traceback, prefix)
            if "_" in f.name or f.name in ("sha256", "traceback", "prefix"):
                assert f.name not in text, (pid, f.name, text)
    assert "first 5 characters of a file's fingerprint" in texts["cloud-lookup"]
    assert "Python versions" in texts["crash-reports"]
    # the field names stay one step away: tooltip, and the preview lists each one
    label = lines["crash-reports"]
    assert label is not None and "traceback" in label.toolTip()
    preview = SendPreviewDialog(ConsentStore.for_paths(aegis_paths), "crash-reports")
    qtbot.addWidget(preview)
    assert "traceback" in preview.text.toPlainText()


def test_vault_key_notes_are_plain_words(tmp_path: Path) -> None:
    import keyring.backends.null

    from aegis_engine.quarantine.keys import KeyStore
    from aegis_gui.wording import plain_note

    said: list[str] = []
    off = KeyStore(tmp_path / "v1", tmp_path / "v1.key", warn=said.append, use_keyring=False)
    (tmp_path / "v1").mkdir()
    off.key()
    nothing = keyring.backends.null.Keyring()
    null = KeyStore(tmp_path / "v2", tmp_path / "v2.key", warn=said.append, backend=nothing)
    (tmp_path / "v2").mkdir()
    null.key()
    assert len(said) == 2 and "v1.key" in said[0] and "v2.key" in said[1]
    for message in said:
        note = plain_note(message)
        assert str(tmp_path) not in note and "null keyring" not in note, note
        assert "file only you can read" in note
    assert "turned off in the settings" in plain_note(said[0])
    assert "GNOME Keyring" in plain_note(said[1])
    assert plain_note("history rebuilt") == "History rebuilt"


def test_long_paths_keep_their_file_name(qtbot: Any) -> None:
    w = ScanWindow()
    qtbot.addWidget(w)
    w.resize(520, 520)
    w.show()
    qtbot.waitExposed(w)
    deep = "/home/u/" + "/".join(f"folder-number-{i}" for i in range(12))
    path = f"{deep}/quarterly-report-2026-final.pdf"
    w.scan_started(1, [deep], "folder")
    w.scan_progress(1, ScanProgress(5, 500, 0, path))
    qtbot.waitUntil(lambda: "…" in w.current.text())
    shown = w.current.text()
    assert "…" in shown and shown.endswith("/quarterly-report-2026-final.pdf"), shown
    assert shown.startswith("/home/u/")
    assert w.current.toolTip() == path and w.current.full_text() == path
    w.scan_finished(1, ScanSummary(files=5, seconds=1.0))
    assert w.targets.text().startswith("Scanned: /home/u/") and "…" in w.targets.text()
    assert w.targets.text().endswith("/folder-number-11"), w.targets.text()
    assert w.targets.toolTip() == f"Scanned: {deep}"
    narrow = w.targets.text()
    w.resize(1300, 520)  # wider: re-elided, more of the path shows
    qtbot.waitUntil(lambda: len(w.targets.text()) > len(narrow) + 40)
    assert w.targets.text().endswith("/folder-number-11")


def test_windows_fit_a_1366x768_screen_with_a_panel(qtbot: Any) -> None:
    from PySide6.QtCore import QRect

    from aegis_gui.windows.common import fit_to_screen

    available = QRect(0, 28, 1366, 740)  # below a 28-pixel top panel
    w = AlertsWindow()
    qtbot.addWidget(w)
    w.resize(860, 900)
    w.move(300, 200)
    fit_to_screen(w, available)
    frame = QRect(w.pos(), w.size()).adjusted(0, 0, 8, 36)  # with a title bar and borders
    assert available.contains(frame), (frame, available)
    assert w.width() == 860, "only what does not fit is changed"
    w.show()
    qtbot.waitExposed(w)
    w.move(600, 500)  # the user moved it half off the screen: the next opening brings it back
    fit_to_screen(w, available)
    assert available.contains(w.frameGeometry()), (w.frameGeometry(), available)


def test_an_answered_alert_is_listed_once(qtbot: Any) -> None:
    w = AlertsWindow()
    qtbot.addWidget(w)
    center = AlertCenter()
    done = center.add(detection("/home/u/Downloads/eicar.com"))
    center.update(done.id, AlertState.QUARANTINED, item_id="abcd", message="moved")
    quarantined = HistoryEvent(
        2,
        datetime(2026, 11, 1, 9, 1, tzinfo=UTC),
        "action",
        "/home/u/Downloads/eicar.com",
        action="quarantine",
        outcome="success",
        item_id="abcd",
    )
    w.set_data(center.all(), [quarantined])
    assert [r.status for r in w.rows] == ["Quarantined"], "not once as alert, once as history"
    waiting = center.add(detection("/home/u/Downloads/other.com"))
    w.set_data(center.all(), [quarantined])
    assert [r.alert_id for r in w.rows] == [waiting.id, None]


def test_consent_dialog_says_what_is_sent_without_field_names(
    qtbot: Any, aegis_paths: AegisPaths
) -> None:
    d = ConsentDialog(ConsentStore.for_paths(aegis_paths))
    qtbot.addWidget(d)
    crash = d.findChild(QLabel, "sends-crash-reports")
    assert crash is not None
    assert "the Python version" in crash.text() and "traceback" not in crash.text()
    assert "aegis_version" not in crash.text() and "traceback" in crash.toolTip()


def test_why_a_file_was_not_fully_scanned_is_said_plainly(qtbot: Any) -> None:
    path = "/home/u/big.iso"
    problem = "max-file-size: 199603328 bytes is over the limit of 104857600"
    obj = ObjectResult(path, Verdict.INCOMPLETE, [], sha256=SHA, size=199603328)
    obj.problems.append(problem)
    report = FileReport(path, Verdict.INCOMPLETE, [obj], sha256=SHA, size=199603328)
    det = Detection(report, DecisionEngine().decide_report(report), "scan")
    w = ScanWindow()
    qtbot.addWidget(w)
    w.scan_started(1, ["/home/u"], "folder")
    w.scan_found(det)
    cell = w.results.item(0, 4)
    assert cell is not None
    assert cell.text() == "Too large to scan whole"
    assert cell.toolTip() == "Too large to scan whole: 190.4 MiB is over the limit of 100 MiB"
