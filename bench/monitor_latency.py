#!/usr/bin/env python3
"""On-access latency: how long after an EICAR file is closed ``aegis monitor`` reports it.

    .venv/bin/python bench/monitor_latency.py [--files 100] [--gap 0.15] [--report-only]

Starts the headless monitor (``python -m aegis_engine.cli monitor DIR --json``, process
monitor and ransomware shield on, as a user runs it) on an empty temporary folder with a
private AEGIS_HOME. Writes ``--files`` EICAR files one after another, ``--gap`` seconds apart;
for each, the time from ``close()`` returning in this process to the ``detection`` JSON line
arriving on the monitor's stdout (same clock: this process's monotonic clock). By default the
policy quarantines each file (so the figure includes moving it into the encrypted vault);
``--report-only`` measures detection alone. Prints p50 / p95 / max and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
REPO = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--gap", type=float, default=0.15)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="aegis-bench-lat-"))
    watched = work / "Downloads"
    watched.mkdir()
    env = {**os.environ, "AEGIS_HOME": str(work / "home")}
    cmd = [sys.executable, "-m", "aegis_engine.cli", "monitor", str(watched), "--json"]
    if args.report_only:
        cmd.append("--report-only")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env, cwd=REPO, bufsize=1)  # fmt: skip
    assert proc.stdout is not None
    latencies: list[float] = []
    missed = 0
    try:
        while True:
            d = json.loads(proc.stdout.readline())
            if d.get("state") == "started":
                break
        time.sleep(2.0)  # let the process monitor finish its first look at running programs
        for i in range(args.files):
            path = watched / f"sample{i:03d}.com"
            with open(path, "wb") as fh:
                fh.write(EICAR)
            closed = time.monotonic()
            deadline = closed + 5.0
            got = None
            while time.monotonic() < deadline:
                ready, _, _ = select.select([proc.stdout], [], [], 0.5)
                if not ready:
                    continue
                line = proc.stdout.readline()
                arrived = time.monotonic()
                d = json.loads(line)
                if d.get("event") == "detection" and d.get("path") == str(path):
                    got = arrived - closed
                    break
            if got is None:
                missed += 1
            else:
                latencies.append(got * 1000)
            time.sleep(args.gap)
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    summary = {
        "files": args.files,
        "detected": len(latencies),
        "missed": missed,
        "action": "report" if args.report_only else "quarantine",
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "max_ms": round(max(latencies), 1),
        "min_ms": round(min(latencies), 1),
        "monitor_exit": proc.returncode,
        "load_avg": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(summary))
    return 0 if missed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
