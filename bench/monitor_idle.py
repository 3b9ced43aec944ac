#!/usr/bin/env python3
"""Idle cost of ``aegis monitor`` over a large tree: CPU averaged over 60 s, and RSS.

    .venv/bin/python bench/monitor_idle.py [--tree DIR] [--files 50000] [--seconds 60]

Without ``--tree``, builds a synthetic tree once in ``bench/.work/monitor-tree`` (``--files``
small files, 50 per folder in a three-level hierarchy: 1,000 folders for 50,000 files;
deterministic names and contents). Starts the headless monitor on it as a user would
(``python -m aegis_engine.cli monitor TREE --json``: on-access scanning, ransomware shield and
process monitor all on) with a private AEGIS_HOME, waits for ``started`` plus a warm-up (the
process monitor's first look scans every running program once), then reads the monitor's CPU
time (user + system, from /proc via psutil) at the start and end of ``--seconds`` of idleness,
and its RSS every second (``--after-detection``: after it quarantined one EICAR file, so
the quarantine vault and the history are loaded too). Also reports the inotify watches it
holds, the system's ``fs.inotify.max_user_watches``, the start-up time, and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def build_tree(root: Path, files: int) -> tuple[int, int]:
    marker = root / ".complete"
    if marker.exists() and marker.read_text() == str(files):
        dirs = sum(1 for _ in root.rglob("*") if _.is_dir()) + 1
        return files, dirs
    per_dir = 50
    n = 0
    dirs = 1
    for a in range(10):
        for b in range(10):
            for c in range(max(1, files // (per_dir * 100))):
                folder = root / f"a{a}" / f"b{b}" / f"c{c:02d}"
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(per_dir):
                    if n >= files:
                        break
                    (folder / f"doc{i:02d}.txt").write_text(f"file {n}\n" * (1 + n % 40))
                    n += 1
    dirs = sum(1 for _ in root.rglob("*") if _.is_dir()) + 1
    marker.write_text(str(files))
    return n, dirs


def inotify_watches(pid: int) -> int:
    total = 0
    fd_dir = Path(f"/proc/{pid}/fdinfo")
    for info in fd_dir.iterdir():
        try:
            total += sum(1 for line in info.read_text().splitlines() if line.startswith("inotify"))
        except OSError:
            continue
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tree", type=Path)
    ap.add_argument("--files", type=int, default=50_000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument(
        "--after-detection",
        action="store_true",
        help="drop an EICAR file first (quarantined), so the quarantine and history are loaded",
    )
    args = ap.parse_args()

    tree = args.tree or REPO / "bench" / ".work" / "monitor-tree"
    tree.mkdir(parents=True, exist_ok=True)
    if args.tree:
        nfiles = sum(len(f) for _, _, f in os.walk(tree))
        ndirs = sum(1 for _ in os.walk(tree))
    else:
        nfiles, ndirs = build_tree(tree, args.files)
    home = Path(tempfile.mkdtemp(prefix="aegis-bench-idle-"))
    env = {**os.environ, "AEGIS_HOME": str(home)}
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aegis_engine.cli", "monitor", str(tree), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    assert proc.stdout is not None
    started = None
    while started is None:
        d = json.loads(proc.stdout.readline())
        if d.get("state") == "started":
            started = d
    startup = time.monotonic() - t0
    me = psutil.Process(proc.pid)
    if args.after_detection:
        sample = tree / "eicar-sample.com"
        sample.write_bytes(EICAR)
        while json.loads(proc.stdout.readline()).get("event") != "detection":
            pass
    time.sleep(args.warmup)
    rss_start = me.memory_info().rss
    cpu0 = me.cpu_times()
    w0 = time.monotonic()
    rss_max = rss_start
    while time.monotonic() - w0 < args.seconds:
        time.sleep(1.0)
        rss_max = max(rss_max, me.memory_info().rss)
    cpu1 = me.cpu_times()
    wall = time.monotonic() - w0
    used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    watches = inotify_watches(proc.pid)
    threads = me.num_threads()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    stopped = json.loads(out.splitlines()[-1]) if out.strip() else {}
    shutil.rmtree(home, ignore_errors=True)
    if args.after_detection:
        (tree / "eicar-sample.com").unlink(missing_ok=True)
    try:
        max_watches = int(Path("/proc/sys/fs/inotify/max_user_watches").read_text())
    except OSError:
        max_watches = None
    summary = {
        "tree": str(tree),
        "files": nfiles,
        "folders": ndirs,
        "startup_s": round(startup, 2),
        "idle_seconds": round(wall, 1),
        "cpu_seconds": round(used, 3),
        "cpu_percent_of_one_core": round(100 * used / wall, 3),
        "rss_mb_after_warmup": round(rss_start / 1e6, 1),
        "rss_mb_max": round(rss_max / 1e6, 1),
        "inotify_watches": watches,
        "max_user_watches": max_watches,
        "threads": threads,
        "folders_watched": started.get("folders_watched"),
        "after_detection": args.after_detection,
        "exit": proc.returncode,
        "stopped_state": stopped.get("state"),
        "load_avg": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
