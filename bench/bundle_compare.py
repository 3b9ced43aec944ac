#!/usr/bin/env python3
"""Two builds of the desktop program side by side in one run: the PyInstaller bundle
(``bash packaging/build-linux.sh`` -> dist/aegis) against the pyside6-deploy/Nuitka build
(``nice -n 19 bash packaging/linux/build-nuitka.sh`` -> build-nuitka/aegis).

    .venv/bin/python bench/bundle_compare.py [--a dist/aegis] [--b build-nuitka/aegis]
        [--runs 3] [--idle 20]

The same figures as ``bench/bundle_budget.py`` (its functions; the size as ``tar | xz -9``
of the folder, as build-linux.sh packs it), launch of ``aegis-tray --timings`` to
"protected" with a fresh profile, idle RSS and CPU of the tray app and of ``aegis monitor``
with their children), the two builds interleaved run by run so that both see the same load;
medians, and the ratio b/a. Prints a Markdown table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bundle_budget import (
    display,
    median,
    monitor_run,
    tray_run,
)

REPO = Path(__file__).resolve().parents[1]


def xz_size(root: Path) -> int:
    """Bytes of ``tar | xz -9 -T2`` of the folder (as build-linux.sh packs it)."""
    tar = subprocess.Popen(
        ["tar", "-C", str(root.parent), "-cf", "-", root.name], stdout=subprocess.PIPE
    )
    xz = subprocess.run(["xz", "-9", "-T2"], stdin=tar.stdout, capture_output=True, check=True)
    tar.wait()
    return len(xz.stdout)


def unique_bytes(root: Path) -> int:
    """Bytes of the files under ``root``, a hard-linked file once (Nuitka's aegis-tray)."""
    seen: dict[tuple[int, int], int] = {}
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            seen[(st.st_dev, st.st_ino)] = st.st_size
    return sum(seen.values())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", type=Path, default=REPO / "dist" / "aegis", help="PyInstaller")
    ap.add_argument("--b", type=Path, default=REPO / "build-nuitka" / "aegis", help="Nuitka")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--idle", type=float, default=20)
    args = ap.parse_args()
    builds = {"a": args.a.resolve(), "b": args.b.resolve()}
    for b in builds.values():
        if not (b / "aegis").exists():
            raise SystemExit(f"no build at {b}")
    out: dict[str, Any] = {"cpus": os.cpu_count(), "load": os.getloadavg()[0]}
    tray: dict[str, list[dict[str, float]]] = {k: [] for k in builds}
    monitor: dict[str, list[dict[str, float]]] = {k: [] for k in builds}
    with display() as env:
        for _ in range(args.runs):
            for k, b in builds.items():
                tray[k].append(tray_run([str(b / "aegis-tray")], env, args.idle))
                print(k, "tray", tray[k][-1], flush=True)
    for _ in range(args.runs):
        for k, b in builds.items():
            monitor[k].append(monitor_run([str(b / "aegis")], args.idle))
            print(k, "monitor", monitor[k][-1], flush=True)

    def med(rows: list[dict[str, float]]) -> dict[str, float]:
        return {m: median([r[m] for r in rows]) for m in rows[0]}

    out["size"] = {
        k: {"tarxz_mb": xz_size(b) / 1e6, "unpacked_mb": unique_bytes(b) / 1e6}
        for k, b in builds.items()
    }
    out["tray"] = {k: med(v) for k, v in tray.items()}
    out["monitor"] = {k: med(v) for k, v in monitor.items()}
    s, t, m = out["size"], out["tray"], out["monitor"]
    rows = [
        ("package (tar.xz -9)", s["a"]["tarxz_mb"], s["b"]["tarxz_mb"], "MB", 1),
        ("unpacked", s["a"]["unpacked_mb"], s["b"]["unpacked_mb"], "MB", 1),
        ("tray: launch to protected", t["a"]["protected_s"], t["b"]["protected_s"], "s", 2),
        ("tray: idle RSS, with its children", t["a"]["rss_mb"], t["b"]["rss_mb"], "MB", 0),
        ("tray: idle CPU", t["a"]["cpu_pct"], t["b"]["cpu_pct"], "%", 2),
        ("monitor: start", m["a"]["started_s"], m["b"]["started_s"], "s", 2),
        ("monitor: idle RSS, with its children", m["a"]["rss_mb"], m["b"]["rss_mb"], "MB", 0),
        ("monitor: idle CPU", m["a"]["cpu_pct"], m["b"]["cpu_pct"], "%", 2),
    ]
    print(
        f"\n{args.runs} runs each (medians), {args.idle:.0f} s idle windows, {out['cpus']} CPUs, "
        f"load {out['load']:.1f} at the start; a = {builds['a']}, b = {builds['b']}"
    )
    print("| figure | a: PyInstaller | b: pyside6-deploy (Nuitka) | b/a |")
    print("|---|---|---|---|")
    for label, va, vb, unit, digits in rows:
        ratio = f"{vb / va:.2f}" if va else "–"
        print(f"| {label} | {va:.{digits}f} {unit} | {vb:.{digits}f} {unit} | {ratio} |")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
