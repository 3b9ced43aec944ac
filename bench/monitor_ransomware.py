#!/usr/bin/env python3
"""Files lost to a ransomware simulator before the shield suspends it, at several rates.

    .venv/bin/python bench/monitor_ransomware.py [--runs 5] [--rates 40,400,0] [--files 1000]
        [--rival]
    .venv/bin/python bench/monitor_ransomware.py --rival-only [--seconds 600]

``--rival`` runs a second, identical simulator beside each run, started first, at the same
rate, in a folder of its own outside the protected one (restarted on fresh documents whenever
it finishes): a program on a busy machine writing the same volume elsewhere, which the shield
must not blame. ``--rival-only`` just runs that rival, in a loop, for ``--seconds`` (to
reproduce the attribution race beside ``pytest tests/test_monitor_ransomware.py``).

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
import subprocess
import sys
import tempfile
import threading
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


class Rival:
    """The same simulator, in a loop, in a folder outside the protected one: an identical
    writer elsewhere on the machine. Started and stopped by this process only."""

    def __init__(self, rate: float, files: int = 1000) -> None:
        self.rate = rate
        self.files = files
        self.work = Path(tempfile.mkdtemp(prefix="aegis-bench-rival-"))
        self.sim: subprocess.Popen[str] | None = None
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rival", daemon=True)

    def start(self) -> Rival:
        self._thread.start()
        while self.sim is None and self._thread.is_alive():
            time.sleep(0.01)
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            folder = self.work / f"Elsewhere{self.rounds}"
            make_documents(folder, self.files, seed=self.rounds)
            self.sim = spawn_sim(folder, self.rate)
            while self.sim.poll() is None and not self._stop.wait(0.05):
                pass
            stop_process(self.sim)
            shutil.rmtree(folder, ignore_errors=True)
            self.rounds += 1

    def stop(self) -> None:
        self._stop.set()
        if self.sim is not None:
            stop_process(self.sim)
        self._thread.join(30)
        shutil.rmtree(self.work, ignore_errors=True)


def one_run(rate: float, files: int, seed: int, rival: bool = False) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="aegis-bench-rw-"))
    folder = work / "Documents"
    docs = make_documents(folder, files, seed=seed)
    engine = Engine(AegisPaths.under(work / "home"))
    events = Events()
    other = Rival(rate, files).start() if rival else None
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
            if other is not None and any(p.pid == getattr(other.sim, "pid", -1)
                                         for p in ev.processes):
                right = False  # the rival was named: the wrong process
            result.update(
                outcome="suspended" if right else f"wrong process ({ev.action})",
                lost=lost if right else files,
                seconds_to_alert=round(elapsed, 3),
                reasons=list(ev.reasons),
                files_listed=ev.files_total,
            )
    finally:
        stop_process(sim)
        if other is not None:
            other.stop()
        mon.stop()
        engine.close()
        shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rates", default="40,400,0")
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--rival", action="store_true", help="an identical writer elsewhere")
    ap.add_argument("--rival-only", action="store_true", help="only run the rival, in a loop")
    ap.add_argument("--seconds", type=float, default=600.0)
    args = ap.parse_args()
    if args.rival_only:
        loop = Rival(float(args.rates.split(",")[0]), args.files).start()
        try:
            time.sleep(args.seconds)
        except KeyboardInterrupt:
            pass
        finally:
            loop.stop()
        print(json.dumps({"rival_rounds": loop.rounds}))
        return 0
    rates = [float(r) for r in args.rates.split(",")]
    results: dict[float, list[dict[str, object]]] = {r: [] for r in rates}
    for i in range(args.runs):  # interleaved, so that machine load affects every rate alike
        for rate in rates:
            r = one_run(rate, args.files, seed=i, rival=args.rival)
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
    load = os.getloadavg()
    print(json.dumps({"summary": summary, "rival": args.rival, "load_avg": load,
                      "cpus": os.cpu_count()}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
