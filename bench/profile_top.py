#!/usr/bin/env python3
"""Summarise a py-spy profile (``py-spy record -f raw``: collapsed stacks) as two top lists.

    pip install py-spy
    py-spy record --native -r 100 -f raw -o prof.raw -- \\
        .venv/bin/python -m aegis_engine.cli scan ...
    python bench/profile_top.py prof.raw [--top 25] [--thread-prefix aegis-scan]

With ``py-spy record --subprocesses`` (the parent, the preload server, the scan workers and
the emulation children in one profile), "by thread" is by process: the innermost process
py-spy names for the sample.

"self" is the share of samples whose innermost frame is that function (where the CPU was);
"inclusive" is the share of samples with the function anywhere on the stack. Samples are only
taken from threads that were running (py-spy leaves idle threads out by default), so the
shares are of CPU time, summed over threads. Standard library only.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


WAIT_MARKERS = (
    "pthread_cond_timedwait",
    "pthread_cond_wait",
    "PyThread_acquire_lock_timed",
    "sem_wait",
    "sem_timedwait",
    "sem_clockwait",
    "take_gil",
    "epoll_wait",
    "__futex_abstimed_wait",
    "clock_nanosleep",
    "poll (libc.so.6)",
)


def short(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (file.py)``; native frames keep their library."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    parts = path.replace("\\", "/").split("/")
    tail = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{m.group('func')} ({tail})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("raw", help="py-spy raw (collapsed) output")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument(
        "--thread-prefix",
        default="",
        help="only stacks whose thread name starts with this (py-spy puts the thread first)",
    )
    ap.add_argument(
        "--drop-waits",
        action="store_true",
        help="leave out samples of threads blocked on a lock, a queue or the GIL (useful with "
        "--native, where py-spy also samples threads sleeping in C)",
    )
    ap.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="LABEL=TEXT[|TEXT...]",
        help="also report the share of samples whose stack contains any TEXT; the first "
        "group that matches takes the sample (repeatable, in order)",
    )
    args = ap.parse_args()
    groups = []
    for g in args.group:
        label, _, texts = g.partition("=")
        groups.append((label, texts.split("|")))
    group_c: Counter[str] = Counter()

    self_c: Counter[str] = Counter()
    incl_c: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = dropped = 0
    with open(args.raw, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            try:
                n = int(count)
            except ValueError:
                continue
            frames = stack.split(";")
            # With --subprocesses, py-spy names the whole chain of processes: keep the last.
            labels = [f for f in frames if f.startswith(("thread", "process"))]
            thread = labels[-1] if labels else ""
            if args.thread_prefix and args.thread_prefix not in thread:
                continue
            if args.drop_waits and any(w in stack for w in WAIT_MARKERS):
                dropped += n
                continue
            threads[thread] += n
            total += n
            if groups:
                for label, texts in groups:
                    if any(t in stack for t in texts):
                        group_c[label] += n
                        break
                else:
                    group_c["(other)"] += n
            names = [short(f) for f in frames if not f.startswith(("thread", "process"))]
            if names:
                self_c[names[-1]] += n
            for name in set(names):
                incl_c[name] += n
    if not total:
        print("no samples")
        return 1
    print(f"{total} samples" + (f" ({dropped} waiting samples left out)" if dropped else ""))
    print("\nby thread:")
    for t, n in threads.most_common(8):
        print(f"  {100 * n / total:5.1f}%  {t}")
    if groups:
        print("\nby group:")
        for label in [*(g for g, _ in groups), "(other)"]:
            print(f"  {100 * group_c[label] / total:5.1f}%  {label}")
    print(f"\ntop {args.top} by self (innermost frame):")
    for name, n in self_c.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print(f"\ntop {args.top} inclusive:")
    for name, n in incl_c.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
