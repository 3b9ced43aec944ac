#!/usr/bin/env python3
"""How long the GUI thread stalls while the tray app scans, beside an idle baseline.

    .venv/bin/python bench/gui_responsive.py [--files 4000] [--runs 3]

Offscreen (QT_QPA_PLATFORM=offscreen) with a private AEGIS_HOME: a 10 ms QTimer ticks on the
GUI thread, first for 3 s with nothing running (the baseline: what the machine's load alone
does to a timer), then during a scan of ``--files`` generated files (the scan window shown,
one EICAR file among them). Reports, per run, the worst gap between ticks and the 99th
percentile, for the baseline and for the scan, and their ratio. This is the timing that
tests/test_gui_responsive.py used to assert (``< 500 ms``); the test now asserts only that
the timer keeps firing through the scan. Target: worst gap during a scan < 500 ms and
< 5 x the idle baseline's worst gap on the same machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def make_tree(root: Path, files: int) -> None:
    for d in range(max(1, files // 100)):
        sub = root / f"dir{d:03d}"
        sub.mkdir(parents=True)
        for i in range(100):
            data = os.urandom(512 + (i * 37) % 4096)
            (sub / f"file{i:03d}.bin").write_bytes(b"MZ" + data if i % 25 == 0 else data)
    (root / "dir000" / "eicar.com").write_bytes(EICAR)


def gaps_of(ticks: list[float]) -> tuple[float, float]:
    gaps = sorted(b - a for a, b in itertools.pairwise(ticks))
    return gaps[-1] * 1000, gaps[int(len(gaps) * 0.99)] * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=4000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aegis-gui-bench-"))
    os.environ["AEGIS_HOME"] = str(work / "home")
    import keyring
    from PySide6.QtCore import QCoreApplication, QTimer
    from PySide6.QtWidgets import QApplication

    from aegis_engine import AegisPaths
    from aegis_gui.controller import Options, TrayApp
    from tests.e2e_gui.helpers import MemoryKeyring

    keyring.set_keyring(MemoryKeyring())
    qapp = QApplication.instance() or QApplication([])
    app = TrayApp(
        AegisPaths.under(work / "home"), Options(tray=False, first_run=False, protection=False)
    )
    app.start()
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    results = []
    try:
        for run in range(args.runs):
            tree = work / f"tree{run}"  # new contents each run: the scan cache knows none
            make_tree(tree, args.files)
            ticks.clear()
            end = time.perf_counter() + 3
            while time.perf_counter() < end:
                QCoreApplication.processEvents()
                time.sleep(0.001)
            idle_worst, idle_p99 = gaps_of(ticks)
            ticks.clear()
            app.show_scan()
            started = time.perf_counter()
            app.start_scan("folder", [str(tree)])
            while app.scans.running:
                QCoreApplication.processEvents()
                time.sleep(0.001)
            elapsed = time.perf_counter() - started
            worst, p99 = gaps_of(ticks)
            row = {
                "run": run + 1,
                "scan_s": round(elapsed, 2),
                "idle_worst_ms": round(idle_worst, 1),
                "idle_p99_ms": round(idle_p99, 1),
                "scan_worst_ms": round(worst, 1),
                "scan_p99_ms": round(p99, 1),
                "worst_ratio": round(worst / idle_worst, 2),
            }
            results.append(row)
            print(
                f"run {run + 1}: scan {elapsed:.2f} s, "
                f"worst gap {worst:.1f} ms (idle {idle_worst:.1f}), "
                f"p99 {p99:.1f} ms (idle {idle_p99:.1f}), ratio {worst / idle_worst:.2f}",
                flush=True,
            )
    finally:
        timer.stop()
        app.shutdown()
        del qapp
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
