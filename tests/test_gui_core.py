"""The GUI's plumbing: ops call back on the GUI thread, the bridge thins progress, tray
state logic, the schedule, the settings writer, single instance."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import tomllib
from datetime import datetime
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication

from aegis_engine import ScanProgress
from aegis_engine.errors import ConfigError
from aegis_engine.settings import SettingsStore, dumps
from aegis_gui import preferences
from aegis_gui.bridge import EngineBridge
from aegis_gui.icons import TrayState, icon_path, state_icon
from aegis_gui.ops import OpRunner
from aegis_gui.protection import Status
from aegis_gui.schedule import Schedule, next_run
from aegis_gui.single_instance import SingleInstance
from aegis_gui.state import Situation, describe


def test_op_success_and_failure_run_on_the_gui_thread(qtbot: object) -> None:
    runner = OpRunner()
    gui = QThread.currentThread()
    seen: dict[str, object] = {}

    def work() -> str:
        seen["worker"] = threading.current_thread().name
        return "done"

    def ok(result: str) -> None:
        seen["ok"] = (result, QThread.currentThread() is gui)

    def boom() -> None:
        raise ValueError("broken")

    def failed(exc: BaseException) -> None:
        seen["failed"] = (type(exc).__name__, str(exc), QThread.currentThread() is gui)

    runner.run(work, success=ok)
    runner.run(boom, failure=failed)
    qtbot.waitUntil(lambda: "ok" in seen and "failed" in seen, timeout=60_000)  # type: ignore[attr-defined]
    assert seen["ok"] == ("done", True)
    assert seen["failed"] == ("ValueError", "broken", True)
    assert seen["worker"] != threading.current_thread().name
    assert runner.inflight == 0


def test_runners_created_and_dropped_with_ops_never_crash() -> None:
    """Regression: per-op relay QObjects (children of the runner, deleted with deleteLater
    and then with the runner) crashed PySide6 at random; in the full suite this was a
    segfault inside pytest-qt's event processing. Run in a child process so a crash is a
    failure of this test, not of the whole suite."""
    bench = Path(__file__).resolve().parents[1] / "bench" / "gui_ops_lifetime.py"
    proc = subprocess.run(
        [sys.executable, str(bench), "--rounds", "150"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-2000:]}"
    assert proc.stdout.strip() == "ok 150"


def test_bridge_thins_progress_and_skips_clean_reports(qtbot: object) -> None:
    from aegis_engine import FileReport, Verdict

    bridge = EngineBridge(progress_interval=10.0)
    progress: list[object] = []
    reports: list[object] = []
    bridge.scan_progress.connect(lambda sid, p: progress.append((sid, p)))
    bridge.scan_report.connect(lambda sid, r: reports.append((sid, r)))
    on_report, on_progress = bridge.scan_callbacks(7, transform=lambda r: r.path)

    def engine_thread() -> None:
        for i in range(500):
            on_progress(ScanProgress(i, i, 0, f"/f{i}"))
        on_report(FileReport("/clean", Verdict.CLEAN))
        on_report(FileReport("/bad", Verdict.MALICIOUS))

    t = threading.Thread(target=engine_thread)
    t.start()
    t.join()
    qtbot.waitUntil(lambda: bool(reports), timeout=60_000)  # type: ignore[attr-defined]
    QApplication.processEvents()
    assert len(progress) == 1, "500 progress calls in well under 10 s make one signal"
    assert reports == [(7, "/bad")]


@pytest.mark.parametrize(
    ("situation", "state"),
    [
        (Situation(Status.RUNNING, folders=3), TrayState.PROTECTED),
        (Situation(Status.PAUSED, pause_left_ms=60_000), TrayState.PAUSED),
        (Situation(Status.OFF), TrayState.PAUSED),
        (Situation(Status.RUNNING, open_alerts=1), TrayState.THREAT),
        (Situation(Status.RUNNING, updating=True), TrayState.UPDATING),
        (Situation(Status.STARTING), TrayState.UPDATING),
        (Situation(Status.ERROR, error="no inotify"), TrayState.ERROR),
        (Situation(Status.ERROR, error="x", open_alerts=2), TrayState.THREAT),
    ],
)
def test_tray_state(situation: Situation, state: TrayState) -> None:
    got, detail = describe(situation)
    assert got is state
    assert detail


def test_tray_detail_words() -> None:
    assert "3 folders watched" in describe(Situation(Status.RUNNING, folders=3))[1]
    assert "1 min 00 s" in describe(Situation(Status.PAUSED, pause_left_ms=60_000))[1]
    assert "until Aegis restarts" in describe(Situation(Status.PAUSED))[1]
    assert "could not start: no inotify" in describe(Situation(Status.ERROR, error="no inotify"))[1]


def test_every_state_has_an_svg_icon(qapp: QApplication) -> None:
    for state in TrayState:
        assert icon_path(f"shield-{state.value}").read_text().startswith("<svg")
        assert not state_icon(state).pixmap(22, 22).isNull()


def test_next_run() -> None:
    sunday_noon = Schedule(enabled=True, frequency="weekly", weekday="sunday", time="12:00")
    wed = datetime(2026, 11, 18, 9, 30)  # a Wednesday
    assert next_run(sunday_noon, wed) == datetime(2026, 11, 22, 12, 0)
    assert next_run(sunday_noon, datetime(2026, 11, 22, 12, 0)) == datetime(2026, 11, 29, 12, 0)
    daily = Schedule(enabled=True, frequency="daily", time="08:05")
    assert next_run(daily, wed) == datetime(2026, 11, 19, 8, 5)
    assert next_run(daily, datetime(2026, 11, 18, 7, 0)) == datetime(2026, 11, 18, 8, 5)
    assert next_run(Schedule(enabled=False), wed) is None


def test_settings_writer_round_trips_and_keeps_other_tables(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('[limits]\nmax_files = 5\n\n[decision]\nsuspicious = "report"\n')
    store = SettingsStore(path)
    store.update({"exclusions": {"paths": ['/a "b"/*', "C:\\x"], "sha256": ["ab" * 32]}})
    store.update(
        {"realtime": {"enabled": False, "folders": ["/ü/ß"]}, "tray": {"prompt_timeout": 15}}
    )
    data = tomllib.loads(path.read_text())
    assert data["limits"] == {"max_files": 5}
    assert data["decision"] == {"suspicious": "report"}
    assert data["exclusions"]["paths"] == ['/a "b"/*', "C:\\x"]
    assert data["realtime"] == {"enabled": False, "folders": ["/ü/ß"]}
    assert data["tray"] == {"prompt_timeout": 15}
    store.update({"exclusions": {"paths": None, "sha256": None}})
    assert "exclusions" not in tomllib.loads(path.read_text())
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    nested = {"a": {"b": {"c": [1, True, "x"]}, "d": 2}}
    assert tomllib.loads(dumps(nested)) == nested
    with pytest.raises(ConfigError):
        dumps({"t": {"bad": object()}})


def test_preferences_load_save_validate(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "settings.toml")
    prefs = preferences.load(store.current)
    assert prefs.realtime and prefs.folders == () and not prefs.schedule.enabled
    changed = preferences.Preferences(
        realtime=False,
        folders=("/data",),
        exclude_paths=("/build/*",),
        exclude_sha256=("AB" * 32,),
        schedule=Schedule(enabled=True, frequency="daily", weekday="monday", time="07:45"),
        update_server="https://updates.example",
        proxy="http://proxy:3128",
        prompt_timeout=30,
    )
    preferences.save(store, changed)
    again = preferences.load(store.current)
    assert again.realtime is False and again.folders == ("/data",)
    assert again.exclude_sha256 == ("ab" * 32,)
    assert again.schedule == changed.schedule
    assert (again.update_server, again.proxy, again.prompt_timeout) == (
        "https://updates.example",
        "http://proxy:3128",
        30,
    )
    from dataclasses import replace

    for bad in (
        replace(changed, update_server="http://plain.example"),
        replace(changed, proxy="not a url"),
        replace(changed, exclude_sha256=("xyz",)),
        replace(changed, schedule=Schedule(time="25:00")),
    ):
        with pytest.raises(ConfigError):
            bad.validate()


def test_single_instance(qtbot: object, tmp_path: Path) -> None:
    first = SingleInstance(tmp_path / "config", tmp_path / "state")
    assert first.claim()
    shown: list[bool] = []
    first.show_requested.connect(lambda: shown.append(True))
    second = SingleInstance(tmp_path / "config", tmp_path / "state")
    done: list[bool] = []

    def ask() -> None:
        done.append(second.claim(wait_ms=3000))

    # The second instance blocks while connecting: run it from a thread, as if another
    # process, so the first can accept on this (GUI) thread.
    t = threading.Thread(target=ask)
    t.start()
    qtbot.waitUntil(lambda: bool(shown and done), timeout=120_000)  # type: ignore[attr-defined]
    t.join()
    assert done == [False]
    other_profile = SingleInstance(tmp_path / "other", tmp_path / "other-state")
    assert other_profile.claim(), "another profile (AEGIS_HOME) runs its own instance"
    other_profile.release()
    first.release()
