#!/usr/bin/env python3
"""How long a command and every process it starts ran on a CPU and waited for one.

    .venv/bin/python bench/sched_share.py -- COMMAND [ARG...]

Samples ``/proc/PID/schedstat`` (time on a CPU, time waiting on a run queue, time slices)
of the command and all its descendants every 50 ms and prints, per process and in all, the
last values seen, with the wall time. On a machine shared with other work, it separates a
scan that does more work (run time) from one that got a smaller share of the cores (run-queue
wait). Linux only; a process shorter than 50 ms may be missed. Standard library only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time


def _children() -> dict[int, int]:
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        parents[int(name)] = int(stat[stat.rfind(")") + 2 :].split()[1])
    return parents


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__)
        return 2
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    names: dict[int, str] = {}
    seen: dict[int, tuple[int, int, int]] = {}  # pid -> (run ns, wait ns, slices)
    while proc.poll() is None:
        parents = _children()
        tree = {proc.pid}
        grew = True
        while grew:
            grew = False
            for pid, parent in parents.items():
                if parent in tree and pid not in tree:
                    tree.add(pid)
                    grew = True
        for pid in tree:
            try:
                with open(f"/proc/{pid}/schedstat") as fh:
                    run, wait, slices = map(int, fh.read().split())
                if pid not in names:
                    with open(f"/proc/{pid}/cmdline") as fh:
                        names[pid] = fh.read().replace("\0", " ")[:70]
            except (OSError, ValueError):
                continue
            seen[pid] = (run, wait, slices)
        time.sleep(0.05)
    wall = time.perf_counter() - started
    print(f"{'pid':>7} {'CPU s':>7} {'wait s':>7} {'slices':>7}  command")
    total = [0.0, 0.0, 0]
    for pid, (run, wait, slices) in sorted(seen.items()):
        cmd = names.get(pid, "?")
        total[0] += run / 1e9
        total[1] += wait / 1e9
        total[2] += slices
        print(f"{pid:>7} {run / 1e9:7.2f} {wait / 1e9:7.2f} {slices:>7}  {cmd}")
    print(
        f"all: CPU {total[0]:.2f} s, waiting for a CPU {total[1]:.2f} s, "
        f"{int(total[2])} time slices; wall {wall:.2f} s; exit {proc.returncode}; "
        f"load {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
