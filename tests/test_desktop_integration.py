"""Desktop integration: ``aegis-tray --scan`` hands paths to the running instance (a real
second process), the running app scans them in its scan window, "Start Aegis when I log in"
writes and removes the XDG autostart entry, the packaging files are well formed, and the
frozen entry point picks its program by name."""

from __future__ import annotations

import configparser
import importlib.util
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from aegis_engine import AegisPaths
from aegis_gui import autostart
from aegis_gui.controller import TrayApp
from aegis_gui.single_instance import SingleInstance, parse_request, scan_request
from aegis_gui.windows.settings import SettingsDialog
from tests.e2e_gui.helpers import EICAR

ROOT = Path(__file__).resolve().parent.parent
LINUX = ROOT / "packaging" / "linux"


# -- the request line -----------------------------------------------------------------------------


def test_scan_request_round_trip_and_garbage() -> None:
    paths = ["/home/u/a file.txt", "/home/u/dossier é", "/tmp/x\nnewline"]
    line = scan_request(paths)
    assert line.endswith(b"\n") and line.count(b"\n") == 1, "one line, whatever the names"
    assert parse_request(line[:-1]) == ("scan", paths)
    assert parse_request(b"show") == ("show", [])
    assert parse_request(b"scan not json") == ("", [])
    assert parse_request(b"scan []") == ("", []), "nothing to scan is not a request"
    assert parse_request(b'scan [1, "a"]') == ("", [])
    assert parse_request(b"scan \xff\xfe") == ("", [])
    assert parse_request(b"delete everything") == ("", [])
    assert scan_request(["relative"]).startswith(b'scan ["/'), "paths made absolute"


# -- a second start hands its paths over ---------------------------------------------------------


def _second_start(
    qtbot: Any,
    first: SingleInstance,
    aegis_home: Path,
    args: list[str],
    received: Callable[[], bool],
    python: Sequence[str] = (),
) -> tuple[int, bytes]:
    """Run the real ``python -m aegis_gui.app ARGS`` as a second start with the same profile
    while ``first`` (this test's SingleInstance) runs; wait until ``received()``; release
    ``first``. Its exit code and stderr."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "AEGIS_HOME": str(aegis_home)}
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    proc = subprocess.Popen(
        [sys.executable, *python, "-m", "aegis_gui.app", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        qtbot.waitUntil(received, timeout=120_000)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        first.release()
        # deleted by Qt's event loop now, not by Python's garbage collector at some later
        # point while Qt still has events for its sockets
        with qtbot.waitSignal(first.destroyed, timeout=60_000):
            first.deleteLater()
    return proc.returncode, err


def test_second_start_hands_scan_paths_to_the_running_instance(
    qtbot: Any, aegis_paths: AegisPaths, aegis_home: Path, tmp_path: Path
) -> None:
    """The running instance is this test's SingleInstance; the second start is the real
    ``python -m aegis_gui.app --scan`` as a separate process with the same profile."""
    first = SingleInstance(aegis_paths.config_dir, aegis_paths.state_dir)
    assert first.claim()
    asked: list[list[str]] = []
    shown: list[bool] = []
    first.scan_requested.connect(asked.append)
    first.show_requested.connect(lambda: shown.append(True))
    target = tmp_path / "chosen file.bin"
    target.write_bytes(b"x")
    code, err = _second_start(
        qtbot, first, aegis_home, ["--scan", str(target), str(tmp_path)], lambda: bool(asked)
    )
    assert code == 0, err.decode(errors="replace")
    assert b"asked it to scan 2 item(s)" in err
    assert asked == [[str(target), str(tmp_path)]]
    assert not shown


def test_a_second_start_hands_over_before_loading_qt_widgets(
    qtbot: Any, aegis_paths: AegisPaths, aegis_home: Path
) -> None:
    """The menu entry's second start shows the running app's window: it hands the request
    over from the lock file and a local socket, without QApplication or Qt's widgets (which,
    with the engine's scanning code, are most of a start's time)."""
    first = SingleInstance(aegis_paths.config_dir, aegis_paths.state_dir)
    assert first.claim()
    shown: list[bool] = []
    first.show_requested.connect(lambda: shown.append(True))
    code, err = _second_start(
        qtbot, first, aegis_home, ["--show"], lambda: bool(shown), python=["-X", "importtime"]
    )
    assert code == 0, err.decode(errors="replace")[-3000:]
    assert b"showing its window" in err
    imported = {
        line.split(b"|")[-1].strip()
        for line in err.splitlines()
        if line.startswith(b"import time:")
    }
    assert b"PySide6.QtNetwork" in imported, "the hand-over itself uses a local socket"
    assert b"PySide6.QtWidgets" not in imported
    assert b"aegis_gui.controller" not in imported


def test_scan_paths_scan_in_the_window_and_queue_behind_a_running_scan(
    qtbot: Any, tray_app: TrayApp, tmp_path: Path
) -> None:
    first = tmp_path / "first"
    first.mkdir()
    for i in range(200):
        (first / f"f{i}.txt").write_text(f"clean {i}")
    second = tmp_path / "eicar.com"
    second.write_bytes(EICAR)
    tray_app.scan_paths([str(first)])
    window = tray_app.scan_view.window
    assert window is not None and window.isVisible(), "the scan window is shown"
    assert tray_app.scans.running
    tray_app.scan_paths([str(second)])  # a second "Scan with Aegis" while it runs
    assert tray_app.scan_view.queued == [str(second)]
    qtbot.waitUntil(
        lambda: (
            not tray_app.scans.running
            and tray_app.scans.last_summary is not None
            and tray_app.scans.last_summary.threats == 1
        ),
        timeout=60_000,
    )
    assert window.title.text() == "Threats found"


# -- start at login -------------------------------------------------------------------------------


def test_start_at_login_writes_and_removes_the_autostart_entry(
    qtbot: Any, tray_app: TrayApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not autostart.supported():
        pytest.skip("XDG autostart is for Linux and the BSDs")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    entry = tmp_path / "config" / "autostart" / "aegis-tray.desktop"
    dialog = tray_app.show_settings()
    assert isinstance(dialog, SettingsDialog)
    assert not dialog.autostart.isHidden() and not dialog.autostart.isChecked()
    dialog.autostart.setChecked(True)
    dialog.buttons.button(dialog.buttons.StandardButton.Save).click()
    qtbot.waitUntil(entry.exists, timeout=10_000)
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(entry.read_text())
    section = parser["Desktop Entry"]
    assert section["Type"] == "Application"
    program = autostart.tray_command()[0]
    assert Path(program).exists() and section["Exec"].startswith(program.replace("%", "%%"))
    assert autostart.is_enabled()
    again = tray_app.show_settings()
    assert again.autostart.isChecked(), "the dialog shows what is on disk"
    again.autostart.setChecked(False)
    again.buttons.button(again.buttons.StandardButton.Save).click()
    qtbot.waitUntil(lambda: not entry.exists(), timeout=10_000)
    assert not autostart.is_enabled()


def test_autostart_exec_line_quotes_paths() -> None:
    text = autostart.entry_text(["/opt/my apps/aegis-tray", "--show"])
    assert 'Exec="/opt/my apps/aegis-tray" --show\n' in text
    assert 'Exec="/a/b$c" x%%y\n' in autostart.entry_text(["/a/b$c", "x%y"]).replace("\\$", "$")


# -- packaging files ---------------------------------------------------------------------------


def _desktop(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser


@pytest.mark.parametrize(
    "name",
    [
        "aegis-tray.desktop",
        "aegis-scan.desktop",
        "aegis-tray-autostart.desktop",
        "file-managers/aegis-scan-dolphin.desktop",
    ],
)
def test_desktop_files_are_well_formed(name: str) -> None:
    parser = _desktop(LINUX / name)
    entry = parser["Desktop Entry"]
    assert entry["Type"] in {"Application", "Service"}
    execs = [s["Exec"] for s in parser.values() if "Exec" in s]
    assert execs and all(e.split()[0] == "aegis-tray" for e in execs)
    if name != "aegis-tray-autostart.desktop" and name != "aegis-tray.desktop":
        assert all("--scan %F" in e for e in execs), "file managers pass the chosen paths"
    if entry["Type"] == "Application":
        assert entry["Icon"] == "aegis" and entry["Terminal"] == "false"


def test_metainfo_names_the_desktop_entry_and_binaries() -> None:
    tree = ET.parse(LINUX / "org.aegis.Aegis.metainfo.xml")
    root = tree.getroot()
    assert root.get("type") == "desktop-application"
    assert root.findtext("id") == "org.aegis.Aegis"
    assert root.findtext("launchable") == "aegis-tray.desktop"
    assert {b.text for b in root.iter("binary")} == {"aegis", "aegis-tray"}


def test_systemd_unit_runs_the_monitor_and_stops_it_like_ctrl_c() -> None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((LINUX / "aegis-monitor.service").read_text())
    assert parser["Service"]["ExecStart"] == "@BINDIR@/aegis monitor"
    assert parser["Service"]["KillSignal"] == "SIGINT"
    assert parser["Install"]["WantedBy"] == "default.target"


def test_file_manager_script_passes_every_path(tmp_path: Path) -> None:
    fake = tmp_path / "aegis-tray"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    fake.chmod(0o755)
    script = tmp_path / "scan-with-aegis"
    text = (LINUX / "file-managers" / "scan-with-aegis").read_text()
    script.write_text(text.replace("@BINDIR@", str(tmp_path)))
    script.chmod(0o755)
    out = subprocess.run(
        [str(script), "/a b/c", "/d"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert out.splitlines() == ["--scan", "/a b/c", "/d"]


def test_icons_render_at_the_standard_sizes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("render_icons", LINUX / "render_icons.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.render(tmp_path)
    from PySide6.QtGui import QImage

    for size in (16, 48, 256):
        png = tmp_path / "hicolor" / f"{size}x{size}" / "apps" / "aegis.png"
        assert png in written
        image = QImage(str(png))
        assert (image.width(), image.height()) == (size, size)
        assert image.pixelColor(size // 2, size // 2).alpha() > 0, "the shield is drawn"
    assert (tmp_path / "hicolor" / "scalable" / "apps" / "aegis.svg").exists()


# -- the frozen entry point -----------------------------------------------------------------------


def test_frozen_entry_point_picks_the_program_by_name() -> None:
    spec = importlib.util.spec_from_file_location(
        "aegis_main", ROOT / "packaging" / "entry" / "aegis_main.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.program_name("/opt/aegis/aegis-tray") == "aegis-tray"
    assert module.program_name("C:\\Aegis\\AEGIS-TRAY.EXE".replace("\\", "/")) == "aegis-tray"
    assert module.program_name("/usr/bin/aegis") == "aegis"
    assert module.program_name("aegis.exe") == "aegis"
    source = (ROOT / "packaging" / "entry" / "aegis_main.py").read_text()
    assert source.index("freeze_support()") < source.index("from aegis_gui"), (
        "freeze_support runs before Qt or the engine is imported"
    )
