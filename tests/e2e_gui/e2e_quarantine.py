"""End to end on a real virtual screen: run inside ``xvfb-run -a dbus-run-session --``.

Starts dunst (the notification daemon) and trayer (a system tray), then the real tray app
(``python -m aegis_gui.app``) with AEGIS_HOME set by the caller; drops EICAR into the watched
folder, waits for the notification, invokes its default action (Quarantine) with
``dunstctl action 0``, and checks that the file is in the vault and the user's choice is in
the history. Prints one ``E2E-RESULT {json}`` line; exit status 0 when every check passed.

Usage: e2e_quarantine.py WORKDIR
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e_gui.helpers import EICAR, start_tray_host

REPO = Path(__file__).resolve().parents[2]


# Waits for behaviour, not for a duration: generous enough for a loaded 2-core CI machine
# (the durations are reported in the result; bench/ and measure.py hold the timings).
SLOW = 120.0


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def dunst_config(work: Path) -> Path:
    log = work / "notifications.log"
    script = work / "log-notification.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s|%s|%s\\n" "$1" "$2" "$3" >> "{log}"\n')
    script.chmod(0o755)
    conf = work / "dunstrc"
    conf.write_text(
        "[global]\n"
        "    font = DejaVu Sans 10\n"
        '    geometry = "400x5-10+40"\n'
        "    width = 420\n"
        "    offset = 10x40\n"
        "    origin = top-right\n"
        "    frame_width = 1\n"
        "    show_indicators = true\n"
        "[aegis_log]\n"
        "    appname = Aegis\n"
        f"    script = {script}\n"
    )
    return conf


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aegis_engine.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def main(work: Path) -> int:
    result: dict[str, object] = {}
    t0 = time.monotonic()
    phases: dict[str, float] = {}
    result["phases_s"] = phases  # when each step ended, from the script's start

    def mark(name: str) -> None:
        phases[name] = round(time.monotonic() - t0, 3)
    procs: list[subprocess.Popen[bytes]] = []
    app: subprocess.Popen[str] | None = None
    app_lines: list[str] = []  # what the app prints on stderr, read by a thread
    home = Path(os.environ["AEGIS_HOME"])
    watched = work / "Downloads"
    watched.mkdir(parents=True, exist_ok=True)
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "settings.toml").write_text(
        f'[realtime]\nfolders = ["{watched}"]\n\n'
        "[tray]\nprompt_timeout = 600\n\n"
        "[quarantine]\nuse_keyring = false\n"
    )
    log = work / "notifications.log"
    try:
        procs.append(
            subprocess.Popen(
                ["dunst", "-config", str(dunst_config(work))],
                stdout=subprocess.DEVNULL,
                stderr=open(work / "dunst.err", "wb"),  # noqa: SIM115
            )
        )
        wait_for(
            "dunst on the session bus",
            lambda: subprocess.run(["dunstctl", "is-paused"], capture_output=True).returncode == 0,
            10,
        )
        mark("dunst ready")
        procs.append(start_tray_host())
        time.sleep(0.7)  # trayer must own the tray selection before the app asks for it
        mark("tray host started")
        env = {**os.environ, "QT_QPA_PLATFORM": "xcb"}
        started = time.monotonic()
        app = subprocess.Popen(
            [sys.executable, "-m", "aegis_gui.app", "--timings", "--verbose"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        protected_line = ""
        notifications = ""
        assert app.stderr is not None
        while time.monotonic() - started < SLOW:
            line = app.stderr.readline()
            if not line:
                break
            app_lines.append(line)
            if "protected shown" in line:
                protected_line = line.strip()
            if "notifications: " in line:
                notifications = line.split("notifications: ", 1)[1].split()[0]
            if protected_line and notifications:
                break
        result["protected"] = protected_line
        mark("app protected")
        result["notification_mode"] = notifications
        # Keep reading what the app prints: a full stderr pipe would block the app itself.
        reader = threading.Thread(
            target=lambda: app_lines.extend(iter(app.stderr.readline, "")),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        if not protected_line:
            raise RuntimeError("the app never showed the protected state")
        if notifications != "dbus":
            raise RuntimeError(f"desktop notifications not in use: {notifications or 'no answer'}")
        result["launch_to_protected_s"] = float(protected_line.split("shown ")[1].split(" s")[0])
        result["tray"] = "system tray available" in protected_line

        target = watched / "eicar.com"
        dropped = time.monotonic()
        target.write_bytes(EICAR)
        result["notification_s"] = wait_for(
            "the detection notification",
            lambda: log.exists() and "eicar.com" in log.read_text(),
            SLOW,
        )
        mark("notified")
        prompt = log.read_text().splitlines()[0]
        result["prompt"] = prompt
        clicked = time.monotonic()
        action = subprocess.run(["dunstctl", "action", "0"], capture_output=True, text=True)
        result["dunstctl_action"] = action.returncode

        def gone() -> bool:
            return not target.exists()

        result["quarantine_s"] = wait_for("the file to leave the folder", gone, SLOW)
        wait_for(
            "the confirmation notification",
            lambda: "moved to the quarantine" in log.read_text(),
            SLOW,
        )
        result["confirmation"] = log.read_text().splitlines()[-1]
        result["drop_to_quarantined_s"] = round(time.monotonic() - dropped, 3)
        result["click_to_quarantined_s"] = round(time.monotonic() - clicked, 3)

        app.send_signal(signal.SIGTERM)
        result["app_exit"] = app.wait(SLOW)
        mark("app exited")
        reader.join(5)
        result["app_stderr"] = "".join(app_lines)[-2000:]

        listing = run_cli("quarantine", "list", "--json")
        items = json.loads(listing.stdout or "[]")
        result["vault"] = [{"path": i["path"], "sha256": i["sha256"]} for i in items]
        history = json.loads(run_cli("history", "--json").stdout or "[]")
        result["user_choice_recorded"] = any(
            e.get("kind") == "decision" and e.get("decision") == "quarantine" for e in history
        )
        mark("CLI checks done")
        checks = {
            "tray": result["tray"] is True,
            "prompt has the file": "eicar.com" in prompt,
            "dunstctl action ok": action.returncode == 0,
            "original gone": not target.exists(),
            "one item in the vault": len(items) == 1 and items[0]["path"] == str(target),
            "the user's click is in the history": result["user_choice_recorded"] is True,
            "app exited cleanly": result["app_exit"] == 0,
        }
        result["checks"] = checks
        ok = all(checks.values())
    except Exception as exc:  # report what happened, then fail
        result["error"] = f"{type(exc).__name__}: {exc}"
        if log.exists():
            result["notifications"] = log.read_text()
        # what the engine saw and did, for a failure that happens once in many runs
        with contextlib.suppress(Exception):
            result["history"] = run_cli("history", "--json").stdout[-3000:]
        with contextlib.suppress(Exception):
            result["dunst_err"] = (work / "dunst.err").read_text()[-1000:]
        ok = False
    finally:
        if app is not None and app.poll() is None:
            app.kill()
            app.wait(10)
            result.setdefault("app_stderr", "".join(app_lines)[-8000:])
        for p in procs:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
    mark("end")
    print("E2E-RESULT " + json.dumps(result), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) != 2 or not shutil.which("dunst"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1])))
