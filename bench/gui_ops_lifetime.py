#!/usr/bin/env python3
"""Stress of aegis_gui.ops: runners created, used and dropped over and over.

    .venv/bin/python bench/gui_ops_lifetime.py [--rounds 300] [--ops 10]

Each round creates an OpRunner, runs ``--ops`` ops (half succeed, half raise), processes
events until every callback ran, then drops the runner and collects garbage. It prints
``ok ROUNDS`` and exits 0, or dies with a fault (the former per-op relay design of ops.py
crashed here with SIGSEGV/SIGBUS within a few hundred rounds; in the full test suite it was
the random segfault in test_gui_core). tests/test_gui_core.py runs it with fewer rounds.
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--ops", type=int, default=10)
    args = ap.parse_args()
    faulthandler.enable()
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    from aegis_gui.ops import OpRunner

    app = QApplication.instance() or QApplication([])
    results: list[object] = []

    def work() -> str:
        return "done"

    def boom() -> None:
        raise ValueError("broken")

    for _ in range(args.rounds):
        runner = OpRunner()
        for i in range(args.ops):
            if i % 2:
                runner.run(boom, failure=results.append)
            else:
                runner.run(work, success=results.append)
        while runner.inflight:
            QCoreApplication.processEvents()
        del runner
        gc.collect()
    expected = args.rounds * args.ops
    if len(results) != expected:
        print(f"{len(results)} callbacks of {expected}", file=sys.stderr)
        return 1
    print(f"ok {args.rounds}")
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
