#!/usr/bin/env python3
"""Soak: ``aegis monitor`` plus repeated ``aegis scan`` runs under file-event storms.

    .venv/bin/python bench/soak.py --minutes 10 [--json OUT]

Starts the headless monitor (``python -m aegis_engine.cli monitor DIR --json``, on-access
scanning and the ransomware shield on, process monitor off so that other users' programs on
a shared machine do not add noise) with a private AEGIS_HOME, then until the time is up:

- a storm: create, rewrite, rename and delete ``--storm`` small files in the watched folder,
  with one EICAR file dropped every storm (the monitor must report and quarantine each one);
- one ``aegis scan --json`` of the watched folder (a separate process, as a user would).

It samples the monitor's RSS, threads, open file descriptors and child processes after a
warm-up (the first two storms) and at the end, and counts the EICAR detections. Targets from
issue 12: RSS growth < 10 %, no growth in threads, file descriptors or child processes, every
EICAR drop detected. Prints one JSON summary (also written to ``--json``).
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
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def sample(proc: psutil.Process) -> dict[str, int]:
    with proc.oneshot():
        return {
            "rss": proc.memory_info().rss,
            "threads": proc.num_threads(),
            "fds": proc.num_fds(),
            "children": len(proc.children(recursive=True)),
        }


def storm(folder: Path, n: int, round_no: int) -> None:
    for i in range(n):
        p = folder / f"f{round_no % 3}-{i}.txt"
        p.write_bytes(os.urandom(64) * (1 + i % 16))
    for i in range(0, n, 2):
        p = folder / f"f{round_no % 3}-{i}.txt"
        with open(p, "ab") as fh:
            fh.write(b"more\n")
    for i in range(1, n, 4):
        src = folder / f"f{round_no % 3}-{i}.txt"
        src.rename(src.with_suffix(".moved"))
    for p in folder.glob(f"f{round_no % 3}-*"):
        p.unlink()
    (folder / f"eicar-{round_no}.com").write_bytes(EICAR)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--storm", type=int, default=400, help="files per storm")
    ap.add_argument("--json", type=Path, help="also write the summary here")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="aegis-soak-"))
    watched = work / "watched"
    watched.mkdir()
    env = {
        **os.environ,
        "AEGIS_HOME": str(work / "home"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    cmd = [sys.executable, "-m", "aegis_engine.cli", "monitor", str(watched), "--json"]
    mon = subprocess.Popen(
        [*cmd, "--no-processes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=REPO,
    )
    detections = 0
    quarantined = 0
    errors: list[str] = []
    started = threading.Event()

    def reader() -> None:
        nonlocal detections, quarantined
        assert mon.stdout is not None
        for line in mon.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                errors.append(line[:200])
                continue
            if event.get("state") == "started":
                started.set()
            if event.get("event") == "detection" and "eicar-" in str(event.get("path")):
                detections += 1
                if event.get("action") == "quarantine":
                    quarantined += 1

    threading.Thread(target=reader, daemon=True).start()
    summary: dict[str, object] = {}
    try:
        if not started.wait(180):
            raise SystemExit("the monitor did not start")
        proc = psutil.Process(mon.pid)
        deadline = time.monotonic() + args.minutes * 60
        rounds = scans = 0
        scan_codes: dict[int, int] = {}
        first: dict[str, int] | None = None
        peak_rss = 0
        while time.monotonic() < deadline or rounds < 3:
            storm(watched, args.storm, rounds)
            rounds += 1
            r = subprocess.run(
                [sys.executable, "-m", "aegis_engine.cli", "scan", "--json", str(watched)],
                capture_output=True,
                env=env,
                cwd=REPO,
                timeout=600,
            )
            scans += 1
            scan_codes[r.returncode] = scan_codes.get(r.returncode, 0) + 1
            now = sample(proc)
            peak_rss = max(peak_rss, now["rss"])
            if rounds == 2:
                first = now
        time.sleep(5)  # let the monitor finish the last storm
        last = sample(proc)
        assert first is not None
        summary = {
            "minutes": args.minutes,
            "storms": rounds,
            "files_per_storm": args.storm,
            "scans": scans,
            "scan_exit_codes": scan_codes,
            "eicar_dropped": rounds,
            "eicar_detected_by_monitor": detections,
            "eicar_quarantined_by_monitor": quarantined,
            "after_warmup": first,
            "end": last,
            "peak_rss": peak_rss,
            "rss_growth_pct": round(100 * (last["rss"] - first["rss"]) / first["rss"], 1),
            "bad_lines": len(errors),
        }
    finally:
        mon.send_signal(signal.SIGTERM)
        try:
            mon.wait(60)
        except subprocess.TimeoutExpired:
            mon.kill()
            mon.wait()
        summary["monitor_exit"] = mon.returncode
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
