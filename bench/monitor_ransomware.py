#!/usr/bin/env python3
"""Files lost to a ransomware simulator before the shield suspends it, at several rates.

    .venv/bin/python bench/monitor_ransomware.py [--runs 5] [--rates 40,400,0] [--files 1000]

Each run: a fresh protected folder of ``--files`` plausible documents (text, CSV, zip-based
.docx), a Monitor on it (on-access scanning and the shield, as ``aegis monitor FOLDER`` runs
them, in this process), then the simulator ``tests/helpers/ransomware_sim.py`` as a separate
process: reads each file in directory order, writes an AES-CTR encrypted copy, deletes the
original, at the given rate (0 = unthrottled). The run ends at the shield's ``ransomware``
event; "files lost" = originals that no longer exist at that moment (the simulator is
suspended, so the count cannot grow), then the simulator is killed.

The shield sees every process on this machine and never the simulator's name or command line.
As a safety net on a shared machine, it may only signal processes this benchmark started: if
its attribution picked any other process, that process is left alone, the run is reported as
``wrong process`` and the simulator keeps going until the timeout (counted as all files lost).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the source tree, and the test helpers

from helpers.monitor_support import (  # noqa: E402
    Events,
    descendant_guard,
    make_documents,
    originals_left,
    spawn_sim,
    stop_process,
)

from aegis_engine import Engine  # noqa: E402
from aegis_engine.monitor import Monitor, RansomwareEvent  # noqa: E402
from aegis_engine.paths import AegisPaths  # noqa: E402


def one_run(rate: float, files: int, seed: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="aegis-bench-rw-"))
    folder = work / "Documents"
    docs = make_documents(folder, files, seed=seed)
    engine = Engine(AegisPaths.under(work / "home"))
    events = Events()
    mon = Monitor(engine, [folder], processes=False, guard=descendant_guard())
    mon.subscribe(events)
    mon.start()
    t0 = time.monotonic()
    sim = spawn_sim(folder, rate)
    result: dict[str, object] = {"rate": rate}
    try:
        ev = events.wait_for(lambda e: isinstance(e, RansomwareEvent), timeout=120)
        elapsed = time.monotonic() - t0
        lost = files - originals_left(folder, docs)
        if not isinstance(ev, RansomwareEvent):
            result.update(outcome="not stopped", lost=lost)
        else:
            first = ev.processes[0] if ev.processes else None
            right = first is not None and first.pid == sim.pid and first.outcome == "suspended"
            result.update(
                outcome="suspended" if right else f"wrong process ({ev.action})",
                lost=lost if right else files,
                seconds_to_alert=round(elapsed, 3),
                reasons=list(ev.reasons),
                files_listed=ev.files_total,
            )
    finally:
        stop_process(sim)
        mon.stop()
        engine.close()
        shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rates", default="40,400,0")
    ap.add_argument("--files", type=int, default=1000)
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    results: dict[float, list[dict[str, object]]] = {r: [] for r in rates}
    for i in range(args.runs):  # interleaved, so that machine load affects every rate alike
        for rate in rates:
            r = one_run(rate, args.files, seed=i)
            results[rate].append(r)
            print(json.dumps(r), flush=True)
    summary = []
    for rate, runs in results.items():
        lost = [int(r["lost"]) for r in runs]  # type: ignore[call-overload]
        summary.append(
            {
                "rate": "unthrottled" if rate == 0 else rate,
                "runs": len(runs),
                "lost": lost,
                "median": statistics.median(lost),
                "max": max(lost),
                "suspended_right_process": sum(r["outcome"] == "suspended" for r in runs),
            }
        )
    print(json.dumps({"summary": summary, "load_avg": os.getloadavg(), "cpus": os.cpu_count()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
