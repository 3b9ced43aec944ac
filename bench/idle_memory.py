#!/usr/bin/env python3
"""Issue 13: what the tray app and ``aegis monitor`` hold when idle, before and after a file
is scanned on access, for two versions of the code side by side (interleaved runs).

    git archive BASE_COMMIT | (mkdir -p /tmp/aegis-before && tar -x -C /tmp/aegis-before)
    .venv/bin/python bench/idle_memory.py --before /tmp/aegis-before [--runs 3] [--idle 10]
        [--steady 150]

Both versions run with this venv's Python and libraries (``--before`` first on PYTHONPATH,
processes started from ``/``), each with a fresh AEGIS_HOME. The tray app runs on Xvfb
(started here when there is no DISPLAY) with ``--timings --no-notifications``; it is measured
``--idle`` seconds after it first shows "protected", with a temp folder of its own
(``TMPDIR``: it protects the temp folder, and a shared machine's /tmp is never idle).
``aegis monitor FOLDER`` is measured ``--idle`` seconds after ``started`` ("idle"), then
again once the EICAR test file written into the folder has been reported ("after a
detection": the scan workers have started).
Each is measured twice while idle: ``--idle`` s after start ("right after start": the
scan workers the process monitor's first look at running programs started may still be
there) and once its scan workers and their preload server have left ("steady idle"; polled
for up to ``--steady`` s after start; when they are still there then, it is measured anyway
and the process count says so). Figures from ``/proc/PID/smaps_rollup``: RSS and PSS of the
main process, PSS summed over it and all its descendants, the PSS of each descendant by role
(resource tracker, fork server, preload server, scan worker), and whether the main process
maps YARA, onnxruntime or numpy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundle_budget import display, stop
from run import _descendants

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
MAIN = "import sys; from aegis_engine.cli import main; sys.exit(main())"


def rollup(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("Rss", "Pss"):
                out[key] = int(value.split()[0])
    return out


def role(pid: int, main: int) -> str:
    """What a descendant of the measured process is."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return "gone"
    if "resource_tracker" in cmd:
        return "resource tracker"
    if "forkserver" in cmd:
        return "fork server"
    if "spawn_main" in cmd or "--multiprocessing-fork" in cmd:
        return "preload server" if ppid == main else "scan worker"
    return "scan worker" if ppid != main else "other"


def snapshot(pid: int) -> dict[str, Any]:
    own = rollup(pid)
    kids = _descendants(pid)
    by_role: dict[str, float] = {}
    for kid in kids:
        name = role(kid, pid)
        by_role[name] = by_role.get(name, 0.0) + rollup(kid).get("Pss", 0) / 1024
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        maps = ""
    return {
        "rss_mb": own.get("Rss", 0) / 1024,
        "pss_mb": own.get("Pss", 0) / 1024,
        "tree_pss_mb": own.get("Pss", 0) / 1024 + sum(by_role.values()),
        "processes": 1 + len(kids),
        "roles": {k: round(v, 1) for k, v in sorted(by_role.items())},
        "maps_yara": "yara.cpython" in maps,
        "maps_onnxruntime": "onnxruntime" in maps,
        "maps_numpy": "numpy" in maps,
    }


def pool_gone(pid: int) -> bool:
    return not [k for k in _descendants(pid) if role(k, pid) in ("preload server", "scan worker")]


def steady(pid: int, started: float, limit: float) -> dict[str, Any]:
    """A snapshot once the scan workers and their server have left (or at ``limit`` s)."""
    while not pool_gone(pid) and time.monotonic() - started < limit:
        time.sleep(1)
    snap = snapshot(pid)
    snap["after_s"] = round(time.monotonic() - started, 1)
    return snap


def env_for(version: str, before: str, home: str, extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **extra, "AEGIS_HOME": home}
    env.pop("PYTHONPATH", None)
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    if version == "before":
        env["PYTHONPATH"] = before
    return env


def tray(
    version: str, before: str, screen: dict[str, str], idle: float, limit: float
) -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="aegis-idle-") as home:
        errfile = Path(home) / "stderr.txt"
        # Its own temp folder: the temp folder is one the tray protects by default, and on a
        # shared machine /tmp never stops changing (that is on-access work, not idle).
        (Path(home) / "tmp").mkdir()
        screen = {**screen, "TMPDIR": str(Path(home) / "tmp")}
        with errfile.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "aegis_gui.app", "--timings", "--no-notifications"],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env_for(version, before, home, screen),
                cwd="/",
            )
        try:
            deadline = time.monotonic() + 120
            while "protected shown" not in errfile.read_text(errors="replace"):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"tray never protected: {errfile.read_text()[-2000:]}")
                time.sleep(0.1)
            started = time.monotonic()
            time.sleep(idle)
            first = snapshot(proc.pid)
            return {"idle": first, "steady": steady(proc.pid, started, limit)}
        finally:
            stop(proc)


def monitor(version: str, before: str, idle: float, limit: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="aegis-idle-") as home:
        watched = Path(home) / "watched"
        watched.mkdir()
        proc = subprocess.Popen(
            [sys.executable, "-c", MAIN, "monitor", str(watched), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env_for(version, before, home, {}),
            cwd="/",
            text=True,
        )
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                with contextlib.suppress(ValueError):
                    if json.loads(line).get("state") == "started":
                        break
            started = time.monotonic()
            time.sleep(idle)
            idle_snap = snapshot(proc.pid)
            steady_snap = steady(proc.pid, started, limit)
            (watched / "eicar.com").write_bytes(EICAR)
            for line in proc.stdout:
                if "eicar.com" in line:
                    break
            time.sleep(2)
            return {"idle": idle_snap, "steady": steady_snap, "after": snapshot(proc.pid)}
        finally:
            stop(proc, 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--idle", type=float, default=10.0)
    ap.add_argument("--steady", type=float, default=150.0, help="longest wait for steady idle")
    ap.add_argument("--versions", default="before,now", help="which to run, e.g. now")
    args = ap.parse_args()
    before = str(args.before.resolve())
    versions = tuple(args.versions.split(","))
    rows: dict[str, list[dict[str, Any]]] = {}
    with display() as screen:
        for run in range(args.runs):
            for version in versions if run % 2 == 0 else versions[::-1]:
                t = tray(version, before, screen, args.idle, args.steady)
                m = monitor(version, before, args.idle, args.steady)
                for key, snap in (
                    (f"tray, right after start, {version}", t["idle"]),
                    (f"tray, steady idle, {version}", t["steady"]),
                    (f"monitor, right after start, {version}", m["idle"]),
                    (f"monitor, steady idle, {version}", m["steady"]),
                    (f"monitor after a detection, {version}", m["after"]),
                ):
                    rows.setdefault(key, []).append(snap)
                    print(key, json.dumps(snap), flush=True)
    print(
        f"\n{args.runs} runs, medians; right after start = {args.idle:g} s after it; steady ="
        f" once the scan pool left (at most {args.steady:g} s); MiB (smaps_rollup)\n"
    )
    print(
        "| process | RSS | PSS | PSS with descendants | processes | descendants' PSS by role"
        " (last run) | maps yara / ort / numpy |"
    )
    print("|---|---|---|---|---|---|---|")
    for key, snaps in sorted(rows.items()):

        def med(field: str, snaps: list[dict[str, Any]] = snaps) -> float:
            return statistics.median(s[field] for s in snaps)

        last = snaps[-1]
        maps = f"{last['maps_yara']} / {last['maps_onnxruntime']} / {last['maps_numpy']}"
        roles = ", ".join(f"{k} {v:.1f}" for k, v in last["roles"].items()) or "none"
        if "after_s" in last:
            roles += f" (at {last['after_s']:g} s)"
        print(
            f"| {key} | {med('rss_mb'):.1f} | {med('pss_mb'):.1f} | {med('tree_pss_mb'):.1f} "
            f"| {med('processes'):.0f} | {roles} | {maps} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
