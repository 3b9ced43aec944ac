#!/usr/bin/env python3
"""RSS and PSS of the tray app or ``aegis monitor`` (the main process alone) at fixed times
after it is up, from the venv or from a bundle; and, with ``--pool-gone``, how long the
on-access scan pool takes to leave after a detection (``aegis monitor --no-processes``).

    .venv/bin/python bench/idle_at.py tray|monitor [--bundle dist/aegis] [--at 10,100]
    .venv/bin/python bench/idle_at.py pool-gone [--bundle dist/aegis]

A fresh AEGIS_HOME and a TMPDIR of its own each time (the tray protects the temp folder; a
shared machine's /tmp is never idle). The tray runs on $DISPLAY (start Xvfb first) and
counts from "protected shown" (``--timings``), the monitor from ``started``. MiB, from
``/proc/PID/smaps_rollup``. One run per call: run it several times for a median.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import _descendants

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def rollup(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("Rss", "Pss"):
                out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def live_descendants(pid: int) -> list[int]:
    out = []
    for kid in _descendants(pid):
        try:
            state = Path(f"/proc/{kid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            out.append(kid)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("tray", "monitor", "pool-gone"))
    ap.add_argument("--bundle", type=Path, help="a bundle folder (default: this venv)")
    ap.add_argument("--at", default="10,100", help="seconds after start, comma-separated")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="aegis-idle-at-"))
    (home / "tmp").mkdir()
    env = {**os.environ, "AEGIS_HOME": str(home), "TMPDIR": str(home / "tmp")}
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    bundle = args.bundle.resolve() if args.bundle else None
    cli = [str(bundle / "aegis")] if bundle else [sys.executable, "-m", "aegis_engine.cli"]
    watched = home / "watched"
    watched.mkdir()
    if args.what == "tray":
        tray = [str(bundle / "aegis-tray")] if bundle else [sys.executable, "-m", "aegis_gui.app"]
        err = home / "stderr.txt"
        with err.open("wb") as fh:
            proc = subprocess.Popen(
                [*tray, "--timings", "--no-notifications"],
                stdout=subprocess.DEVNULL, stderr=fh, env=env, cwd="/",
            )  # fmt: skip
        while "protected shown" not in err.read_text(errors="replace"):
            if proc.poll() is not None:
                raise SystemExit(err.read_text()[-2000:])
            time.sleep(0.1)
        out = None
    else:
        extra = ["--no-processes"] if args.what == "pool-gone" else []
        proc = subprocess.Popen(
            [*cli, "monitor", str(watched), "--json", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd="/", text=True,
        )  # fmt: skip
        out = proc.stdout
        assert out is not None
        for line in out:
            if '"started"' in line:
                break
    t0 = time.monotonic()
    result: dict[str, object] = {"what": args.what, "bundle": str(bundle) if bundle else None}
    try:
        if args.what == "pool-gone":
            assert out is not None
            (watched / "eicar.com").write_bytes(EICAR)
            for line in out:
                if "eicar.com" in line:
                    break
            result["after_detection"] = rollup(proc.pid)
            while live_descendants(proc.pid) and time.monotonic() - t0 < 300:
                time.sleep(1)
            result["pool_gone_after_s"] = round(time.monotonic() - t0, 1)
            time.sleep(5)
            result["alone"] = rollup(proc.pid)
        else:
            for at in (float(x) for x in args.at.split(",")):
                time.sleep(max(0.0, at - (time.monotonic() - t0)))
                result[f"at_{at:g}s"] = rollup(proc.pid)
    finally:
        proc.send_signal(15 if args.what == "tray" else 2)
        proc.wait(60)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
