#!/usr/bin/env python3
"""Run a command and say what its peak resident memory was made of (Linux only).

    python bench/rss_split.py [--interval 0.005] -- COMMAND [ARG ...]

Prints the peak RSS from ``wait4`` (ru_maxrss, what ``/usr/bin/time`` calls "maximum resident
set size") and, sampled from ``/proc/PID/status`` at the moment of the highest VmRSS seen, its
split into anonymous memory (the process's own heap, stacks, arenas) and file-backed pages
(shared libraries and files mapped with mmap). MB = 10^6 bytes. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--interval", type=float, default=0.005, help="seconds between samples")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("no command given")

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    done = threading.Event()
    peak: dict[str, int] = {}

    def sample() -> None:
        path = f"/proc/{proc.pid}/status"
        while not done.is_set():
            try:
                with open(path) as fh:
                    fields = dict(line.split(":", 1) for line in fh if ":" in line)
                cur = {
                    k: int(fields[k].split()[0])
                    for k in ("VmRSS", "RssAnon", "RssFile", "RssShmem")
                    if k in fields
                }
            except (OSError, ValueError):
                return
            if cur.get("VmRSS", 0) >= peak.get("VmRSS", 0):
                peak.update(cur)
            done.wait(args.interval)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    _, status, ru = os.wait4(proc.pid, 0)
    done.set()
    t.join()

    def mb(kib: int) -> str:
        return f"{kib * 1024 / 1e6:.1f} MB"

    print(
        f"exit {os.waitstatus_to_exitcode(status)}; peak RSS (ru_maxrss) {mb(ru.ru_maxrss)}; "
        f"at the highest sample: VmRSS {mb(peak.get('VmRSS', 0))} = anonymous "
        f"{mb(peak.get('RssAnon', 0))} + file-backed {mb(peak.get('RssFile', 0))} "
        f"+ shmem {mb(peak.get('RssShmem', 0))}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
