#!/usr/bin/env python3
"""Issue 13: what the tray app and ``aegis monitor`` hold when idle, before and after a file
is scanned on access, for two versions of the code side by side (interleaved runs).

    git archive BASE_COMMIT | (mkdir -p /tmp/aegis-before && tar -x -C /tmp/aegis-before)
    .venv/bin/python bench/idle_memory.py --before /tmp/aegis-before [--runs 3] [--idle 10]

Both versions run with this venv's Python and libraries (``--before`` first on PYTHONPATH,
processes started from ``/``), each with a fresh AEGIS_HOME. The tray app runs on Xvfb
(started here when there is no DISPLAY) with ``--timings --no-notifications``; it is measured
``--idle`` seconds after it first shows "protected". ``aegis monitor FOLDER`` is measured
``--idle`` seconds after ``started`` ("idle"), then again once the EICAR test file written
into the folder has been reported ("after a detection": the scan workers have started).
Figures from ``/proc/PID/smaps_rollup``: RSS and PSS of the main process, PSS summed over it
and all its descendants, and whether the main process maps YARA or onnxruntime.
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


def snapshot(pid: int) -> dict[str, Any]:
    own = rollup(pid)
    tree = sum(rollup(p).get("Pss", 0) for p in [pid, *_descendants(pid)])
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        maps = ""
    return {
        "rss_mb": own.get("Rss", 0) / 1024,
        "pss_mb": own.get("Pss", 0) / 1024,
        "tree_pss_mb": tree / 1024,
        "processes": 1 + len(_descendants(pid)),
        "maps_yara": "yara.cpython" in maps,
        "maps_onnxruntime": "onnxruntime" in maps,
    }


def env_for(version: str, before: str, home: str, extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **extra, "AEGIS_HOME": home}
    env.pop("PYTHONPATH", None)
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    if version == "before":
        env["PYTHONPATH"] = before
    return env


def tray(version: str, before: str, screen: dict[str, str], idle: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="aegis-idle-") as home:
        errfile = Path(home) / "stderr.txt"
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
            time.sleep(idle)
            return snapshot(proc.pid)
        finally:
            stop(proc)


def monitor(version: str, before: str, idle: float) -> dict[str, Any]:
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
            time.sleep(idle)
            idle_snap = snapshot(proc.pid)
            (watched / "eicar.com").write_bytes(EICAR)
            for line in proc.stdout:
                if "eicar.com" in line:
                    break
            time.sleep(2)
            return {"idle": idle_snap, "after": snapshot(proc.pid)}
        finally:
            stop(proc, 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--idle", type=float, default=10.0)
    args = ap.parse_args()
    before = str(args.before.resolve())
    versions = ("before", "now")
    rows: dict[str, list[dict[str, Any]]] = {}
    with display() as screen:
        for run in range(args.runs):
            for version in versions if run % 2 == 0 else versions[::-1]:
                t = tray(version, before, screen, args.idle)
                m = monitor(version, before, args.idle)
                for key, snap in (
                    (f"tray idle, {version}", t),
                    (f"monitor idle, {version}", m["idle"]),
                    (f"monitor after a detection, {version}", m["after"]),
                ):
                    rows.setdefault(key, []).append(snap)
                    print(key, json.dumps(snap), flush=True)
    print(f"\n{args.runs} runs, medians, {args.idle:g} s idle; MB = MiB here (smaps_rollup)\n")
    print("| process | RSS MB | PSS MB | PSS MB, with descendants | processes | maps yara / ort |")
    print("|---|---|---|---|---|---|")
    for key, snaps in sorted(rows.items()):

        def med(field: str, snaps: list[dict[str, Any]] = snaps) -> float:
            return statistics.median(s[field] for s in snaps)

        maps = f"{snaps[-1]['maps_yara']} / {snaps[-1]['maps_onnxruntime']}"
        print(
            f"| {key} | {med('rss_mb'):.1f} | {med('pss_mb'):.1f} | {med('tree_pss_mb'):.1f} "
            f"| {med('processes'):.0f} | {maps} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
