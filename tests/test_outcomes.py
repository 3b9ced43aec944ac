"""The outcome service as every client meets it: one decision, one history, one true sentence.

- an allowlisted file through the CLI, the monitor and the tray app: all three say clean and
  leave the same history (nothing to record);
- a report-only scan or monitor records ``report``, not the policy's ``quarantine``, and says
  one true sentence about the action;
- ``aegis quarantine restore ID --allow`` keeps the file until its content changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import EICAR, NO_KEYRING, run_cli, write_settings
from helpers.monitor_support import Events

from aegis_engine import Engine
from aegis_engine.history import History
from aegis_engine.monitor import DetectionEvent, Monitor
from aegis_engine.paths import AegisPaths

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SHA = hashlib.sha256(EICAR).hexdigest()
# EICAR's standard allows trailing whitespace: still EICAR, another SHA-256
OTHER_EICAR = EICAR + b" "


def cli(*args: str) -> tuple[int, str, str]:
    r = run_cli(*args, env=NO_KEYRING)
    return r.returncode, r.stdout, r.stderr


def history_events(paths: AegisPaths) -> list[dict[str, Any]]:
    if not paths.history_file.exists():
        return []
    with History(paths.history_file, warn=lambda m: None) as h:
        return [
            {k: v for k, v in e.to_dict().items() if k not in ("id", "time")} for e in h.events()
        ]


@pytest.fixture(params=["sfp", "settings"])
def allowlisted(request: pytest.FixtureRequest, aegis_paths: AegisPaths) -> str:
    """EICAR allowlisted by a ``.sfp`` list among the user's own hash lists, or by ``[exclusions]
    sha256`` in the settings (what the tray app's Allow writes)."""
    if request.param == "sfp":
        hashes = aegis_paths.user_hashes_dir
        hashes.mkdir(parents=True)
        (hashes / "mine.sfp").write_text(f"{SHA}:{len(EICAR)}:Known.Good\n")
    else:
        write_settings(aegis_paths, f'[exclusions]\nsha256 = ["{SHA}"]\n')
    return str(request.param)


def test_allowlisted_file_through_the_cli(
    allowlisted: str, aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    (tmp_path / "e.com").write_bytes(EICAR)
    code, out, err = cli("scan", "--json", "--quarantine", str(tmp_path))
    assert code == 0, (out, err)
    summary = json.loads(out.splitlines()[-1])["summary"]
    assert summary["threats"] == 0
    assert (tmp_path / "e.com").read_bytes() == EICAR
    assert history_events(aegis_paths) == []


def test_allowlisted_file_through_the_monitor(
    allowlisted: str, aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    engine = Engine(aegis_paths)
    events = Events()
    try:
        with Monitor(engine, [tmp_path], processes=False, shield=False) as mon:
            mon.subscribe(events)
            (tmp_path / "allowed.com").write_bytes(EICAR)
            (tmp_path / "other.com").write_bytes(OTHER_EICAR)
            assert events.wait_for(lambda e: isinstance(e, DetectionEvent), 60) is not None
            deadline = time.monotonic() + 60
            while mon.stats()["on_access"]["scanned"] < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        engine.close()
    detections = [e for e in events.items if isinstance(e, DetectionEvent)]
    assert [Path(e.path).name for e in detections] == ["other.com"]
    assert (tmp_path / "allowed.com").read_bytes() == EICAR
    # the same history as the CLI's for the allowed file: nothing at all
    assert not [e for e in history_events(aegis_paths) if e["path"].endswith("allowed.com")]


@pytest.fixture
def tray(qtbot: Any, aegis_paths: AegisPaths, memory_keyring: object) -> Iterator[Any]:
    from aegis_gui.controller import Options, TrayApp
    from tests.e2e_gui.helpers import quiet_monitor

    app = TrayApp(aegis_paths, Options(tray=False, first_run=False, monitor_factory=quiet_monitor))
    yield app
    app.shutdown()


def test_allowlisted_file_through_the_tray_app(
    allowlisted: str, qtbot: Any, tray: Any, aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    from aegis_gui.protection import PromptingHandler

    (tmp_path / "e.com").write_bytes(EICAR)
    found: list[object] = []
    tray.scans.found.connect(lambda _id, d: found.append(d))
    assert tray.scans.start([str(tmp_path)], "folder") is not None
    qtbot.waitUntil(lambda: not tray.scans.running, timeout=60_000)
    summary = tray.scans.last_summary
    assert summary is not None and summary.files == 1
    assert summary.threats == 0 and found == []  # was "1 threat(s)" with a clean decision
    # real-time protection's handler in the tray app says the same
    report = tray.engine.scan_file(tmp_path / "e.com")
    delivered: list[object] = []
    fields = PromptingHandler(tray.engine, delivered.append)(report)
    assert fields["verdict"] == "clean" and delivered == []
    assert history_events(aegis_paths) == []


# -- issue 11 items 2 and 3: what was done, said once --------------------------------------------


def test_report_only_scan_records_report_and_says_one_true_sentence(
    aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    (tmp_path / "e.com").write_bytes(EICAR)
    code, out, _ = cli("scan", str(tmp_path))
    assert code == 1
    assert "will move it" not in out and "Not quarantined" not in out
    assert "this scan only reports" in out and "use --quarantine to act" in out
    [det] = history_events(aegis_paths)
    assert det["kind"] == "detection" and det["action"] == "report"
    code, out, _ = cli("history")
    assert "-> report" in out and "-> quarantine" not in out


def test_report_only_monitor_records_report_and_never_mentions_a_scan_flag(
    aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    engine = Engine(aegis_paths)
    events = Events()
    try:
        with Monitor(engine, [tmp_path], processes=False, shield=False, apply_actions=False) as m:
            m.subscribe(events)
            (tmp_path / "e.com").write_bytes(EICAR)
            event = events.wait_for(lambda e: isinstance(e, DetectionEvent), 60)
    finally:
        engine.close()
    assert isinstance(event, DetectionEvent)
    assert event.action == "report" and (tmp_path / "e.com").exists()
    text = " ".join([*event.explanation, event.outcome or ""])
    assert "--quarantine" not in text and "will move it" not in text
    assert "the monitor only reports" in text
    [det] = history_events(aegis_paths)
    assert det["action"] == "report"


def test_acting_scan_records_the_quarantine(aegis_paths: AegisPaths, tmp_path: Path) -> None:
    (tmp_path / "e.com").write_bytes(EICAR)
    code, out, err = cli("scan", "--quarantine", str(tmp_path))
    assert code == 1, err
    assert "Quarantined as item" in out
    kinds = [(e["kind"], e["action"]) for e in history_events(aegis_paths)]
    assert kinds == [("detection", "quarantine"), ("action", "quarantine")]


# -- restore = keep -------------------------------------------------------------------------------


def _quarantine_one(folder: Path) -> str:
    code, out, err = cli("scan", "--json", "--quarantine", str(folder))
    assert code == 1, err
    item_id = json.loads(out.splitlines()[0])["quarantine_id"]
    assert isinstance(item_id, str)
    return item_id


def test_restore_with_allow_keeps_the_file_until_its_content_changes(
    aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    target = tmp_path / "e.com"
    target.write_bytes(EICAR)
    item_id = _quarantine_one(tmp_path)
    code, out, err = cli("quarantine", "restore", item_id, "--allow")
    assert code == 0, err
    assert "Allowed" in out and target.read_bytes() == EICAR
    # neither a scan that acts nor real-time protection acts on it again
    code, out, err = cli("scan", "--json", "--quarantine", str(tmp_path))
    assert code == 0, (out, err) and target.exists()
    engine = Engine(aegis_paths)
    try:
        report = engine.scan_file(target)
        assert report is not None
        assert engine.outcomes.decide(report).verdict.value == "clean"
    finally:
        engine.close()
    # another file with the same content elsewhere is still a threat (path + SHA-256)
    other = tmp_path / "sub"
    other.mkdir()
    (other / "copy.com").write_bytes(EICAR)
    code, _, _ = cli("scan", str(other))
    assert code == 1
    # changed content at the same path: acted on again
    target.write_bytes(OTHER_EICAR)
    code, _, _ = cli("scan", str(target))
    assert code == 1
    actions = [
        (e["kind"], e.get("action") or e.get("decision"), e.get("outcome"))
        for e in history_events(aegis_paths)
    ]
    assert ("decision", "restore", None) in actions
    assert ("action", "allow", "success") in actions


def test_restore_without_allow_is_only_a_restore(aegis_paths: AegisPaths, tmp_path: Path) -> None:
    target = tmp_path / "e.com"
    target.write_bytes(EICAR)
    item_id = _quarantine_one(tmp_path)
    code, out, err = cli("quarantine", "restore", item_id)
    assert code == 0, err and "Allowed" not in out
    code, _, _ = cli("scan", str(tmp_path))
    assert code == 1


def test_the_tray_app_restore_keeps_the_file(
    qtbot: Any, tray: Any, aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    target = tmp_path / "e.com"
    target.write_bytes(EICAR)
    engine: Engine = tray.engine
    report = engine.scan_file(target)
    assert report is not None
    fd = engine.outcomes.decide(report)
    response = engine.outcomes.quarantine(report, fd, chosen_by_user=True)
    assert response.item_id is not None and not target.exists()
    tray.vault.show()
    tray.vault.restore(response.item_id, "")
    qtbot.waitUntil(target.exists, timeout=20_000)
    qtbot.waitUntil(lambda: engine.decisions.exclusions.kept_file(str(target), SHA), timeout=20_000)
    again = engine.scan_file(target)
    assert again is not None and engine.outcomes.decide(again).verdict.value == "clean"


def test_a_restore_from_another_process_is_not_acted_on_by_the_running_monitor(
    aegis_paths: AegisPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keyring.backends.fail

    monkeypatch.setattr(keyring, "get_keyring", lambda: keyring.backends.fail.Keyring())
    folder = tmp_path / "downloads"
    folder.mkdir()
    target = folder / "e.com"
    target.write_bytes(EICAR)
    item_id = _quarantine_one(folder)  # by `aegis scan --quarantine` (key in a key file)
    engine = Engine(aegis_paths)
    events = Events()
    try:
        with Monitor(engine, [folder], processes=False, shield=False) as mon:  # acts
            mon.subscribe(events)
            code, _, err = cli("quarantine", "restore", item_id, "--allow")
            assert code == 0, err
            (folder / "other.com").write_bytes(OTHER_EICAR)  # still caught meanwhile
            assert events.wait_for(
                lambda e: isinstance(e, DetectionEvent) and e.path.endswith("other.com"), 60
            )
            deadline = time.monotonic() + 60
            while mon.stats()["on_access"]["scanned"] < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        engine.close()
    assert target.read_bytes() == EICAR  # neither the file nor the vault's temp file reported
    reported = [Path(e.path).name for e in events.items if isinstance(e, DetectionEvent)]
    assert reported == ["other.com"]


def test_restore_in_flight_needs_the_journal_record(tmp_path: Path) -> None:
    from aegis_engine.quarantine.journal import JournalRecord, restore_in_flight

    journal = tmp_path / "journal"
    journal.mkdir()
    temp = tmp_path / ".aegis-restore-3f2a9c0d11223344.tmp"
    temp.write_bytes(EICAR)
    assert not restore_in_flight(journal, str(temp))  # a name alone proves nothing
    record = JournalRecord("restore", "3f2a9c0d11223344", str(tmp_path), temp_name=temp.name)
    (journal / record.file_name).write_bytes(record.to_json())
    assert restore_in_flight(journal, str(temp))
    elsewhere = tmp_path / "sub"
    elsewhere.mkdir()
    assert not restore_in_flight(journal, str(elsewhere / temp.name))


def test_the_tray_app_records_that_it_asks(qtbot: Any, tray: Any, tmp_path: Path) -> None:
    from aegis_gui.protection import PromptingHandler

    (tmp_path / "e.com").write_bytes(EICAR)
    report = tray.engine.scan_file(tmp_path / "e.com")
    delivered: list[object] = []
    fields = PromptingHandler(tray.engine, delivered.append)(report)
    assert fields["action"] == "ask" and fields["policy_action"] == "quarantine"
    assert len(delivered) == 1 and (tmp_path / "e.com").exists()
    [det] = history_events(tray.engine.paths)
    assert det["kind"] == "detection" and det["action"] == "ask"
