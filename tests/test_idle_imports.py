"""An idle tray app or ``aegis monitor`` holds only what idle needs: no YARA, no
onnxruntime or numpy (the scan workers' preload server loads the content), and neither the
TLS stack nor TUF (loaded at the first update check or network call).

Both are the real programs, started as a user would, each with a fresh profile; what they
have loaded is read from outside, from ``/proc/PID/maps`` (every extension module and
library a Python import brings in is mapped there)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

NOT_AT_IDLE = {
    "yara": "/yara.cpython",
    "onnxruntime": "onnxruntime_pybind11_state",
    "numpy": "/numpy/",
    "cryptography": "/cryptography/hazmat/bindings/_rust",
    "ssl (requests, urllib3)": "/_ssl.cpython",
}


def _loaded(pid: int) -> list[str]:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return [name for name, needle in NOT_AT_IDLE.items() if needle in maps]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "AEGIS_HOME": str(home), **extra}
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    return env


def _stop(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_aegis_monitor_at_idle_holds_no_detector_or_network_code(tmp_path: Path) -> None:
    import signal

    watched = tmp_path / "watched"
    watched.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aegis_engine.cli", "monitor", str(watched), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=_env(tmp_path / "home"),
        cwd="/",
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                if json.loads(line).get("state") == "started":
                    break
            except ValueError:
                continue
        else:
            pytest.fail("aegis monitor never started")
        # The process monitor's first look at running programs goes through the scan
        # workers; give it time to have started them (it is done in the workers, not here).
        time.sleep(3)
        assert proc.poll() is None
        assert _loaded(proc.pid) == []
    finally:
        _stop(proc, signal.SIGINT)


def test_the_tray_app_at_idle_holds_no_detector_or_network_code(tmp_path: Path) -> None:
    import signal

    home = tmp_path / "home"
    home.mkdir()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    errfile = tmp_path / "stderr.txt"
    with errfile.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aegis_gui.app", "--timings", "--no-notifications"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            # Its own temp folder (one of the folders it protects by default): files other
            # programs on this machine leave in /tmp (a vault's restore file from another
            # test run) would be acted on, which is not idle.
            env=_env(home, QT_QPA_PLATFORM="offscreen", TMPDIR=str(tmp)),
            cwd="/",
        )
    try:
        deadline = time.monotonic() + 120
        while "protected shown" not in errfile.read_text(errors="replace"):
            assert proc.poll() is None, errfile.read_text()[-3000:]
            assert time.monotonic() < deadline, errfile.read_text()[-3000:]
            time.sleep(0.1)
        time.sleep(3)  # the first look at running programs, as above
        assert proc.poll() is None
        assert _loaded(proc.pid) == []
    finally:
        _stop(proc, signal.SIGTERM)
