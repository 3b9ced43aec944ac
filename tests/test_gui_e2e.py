"""One end-to-end test on a real virtual screen (Xvfb), a real D-Bus session and a real
notification daemon (dunst), with a real system tray (trayer): EICAR dropped into a watched
folder is quarantined by clicking the notification's Quarantine action.

The test starts tests/e2e_gui/e2e_quarantine.py under ``xvfb-run -a dbus-run-session`` as a
subprocess, so the rest of the suite stays offscreen."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

TOOLS = ("xvfb-run", "dbus-run-session", "dunst", "dunstctl", "trayer")
SCRIPT = Path(__file__).parent / "e2e_gui" / "e2e_quarantine.py"
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_eicar_quarantined_from_a_real_desktop_notification(
    tmp_path: Path, aegis_home: Path
) -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(
            f"needs {', '.join(missing)} (Debian: xvfb dbus-x11 dunst trayer, and the xcb "
            "libraries Qt needs)"
        )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("QT_QPA_PLATFORM", "DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "WAYLAND_DISPLAY")
    }
    env.update(
        AEGIS_HOME=str(aegis_home),
        PYTHONPATH=str(REPO),
        # never a real keyring: the vault keeps its key in a file here ([quarantine]
        # use_keyring = false), and the null backend makes sure nothing else reaches one
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
    )
    work = tmp_path / "work"
    work.mkdir()
    began = time.monotonic()
    proc = subprocess.run(
        [
            "xvfb-run",
            "-a",
            "-s",
            "-screen 0 1280x800x24",
            "dbus-run-session",
            "--",
            sys.executable,
            str(SCRIPT),
            str(work),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=REPO,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("E2E-RESULT ")]
    assert lines, f"no result\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-3000:]}"
    result = json.loads(lines[-1].removeprefix("E2E-RESULT "))
    result["harness_s"] = round(time.monotonic() - began, 3)  # xvfb-run, D-Bus, the script
    print("\n" + json.dumps(result, indent=1))
    assert "error" not in result, result
    assert all(result["checks"].values()), result["checks"]
    assert proc.returncode == 0
