#!/usr/bin/env python3
"""Run a command and say what makes up its peak memory: PSS (and its anonymous and
file-backed parts) of the command and of each descendant, sampled from
``/proc/PID/smaps_rollup`` every 50 ms, printed for the sample where the sum was highest.

    .venv/bin/python bench/peak_by_process.py .venv/bin/python -m aegis_engine.cli scan \\
        --no-cache --jobs 2 --json bench/.work/tree

Each process is named by its role: ``parent`` (the command), ``resource tracker``,
``fork server``, ``preload server`` (a child started through ``spawn_main``), ``scan
worker`` (its children) and, below a worker, ``helper`` (a process a worker started, e.g. an
unpacker's emulation child). MiB.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import _descendants


def pss(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("Pss", "Pss_Anon", "Pss_File"):
                    out[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


def parent_of(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def role(pid: int, root: int, servers: set[int]) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "gone"
    ppid = parent_of(pid)
    if "resource_tracker" in cmd:
        return "resource tracker"
    if "forkserver" in cmd:
        return "fork server"
    if ppid == root:
        if "spawn_main" in cmd or "--multiprocessing-fork" in cmd:
            servers.add(pid)
            return "preload server"
        return "child"
    if ppid in servers:
        return "scan worker"
    return "helper"


def main() -> int:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    best: tuple[float, list[tuple[str, dict[str, float]]]] = (0.0, [])
    servers: set[int] = set()
    while proc.poll() is None:
        snap = [("parent", pss(proc.pid))]
        snap += [(role(p, proc.pid, servers), pss(p)) for p in _descendants(proc.pid)]
        snap = [(name, m) for name, m in snap if m]
        total = sum(m["Pss"] for _, m in snap)
        if total > best[0]:
            best = (total, snap)
        time.sleep(0.05)
    print(f"peak PSS {best[0]:.1f} MiB (exit {proc.returncode})")
    print("| process | PSS | anon | file |")
    print("|---|---|---|---|")
    for name, m in best[1]:
        print(f"| {name} | {m['Pss']:.1f} | {m['Pss_Anon']:.1f} | {m['Pss_File']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
