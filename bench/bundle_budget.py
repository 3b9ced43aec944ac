#!/usr/bin/env python3
"""The desktop bundle's budget, measured on the thing users run (dist/aegis from
``bash packaging/build-linux.sh``), side by side with the same code run from the venv and
with ClamAV's daemon where it can be measured here.

    .venv/bin/python bench/bundle_budget.py [--bundle dist/aegis] [--runs 3] [--idle 30]
        [--steady 150] [--clamd PATH] [--size-only]

* size: the package build-linux.sh made (dist/aegis-*-linux-*.tar.xz, xz -9), the same
  bundle as tar.gz -9 (the former format, for comparison), unpacked, and Qt's share (the
  PySide6 folder: Qt's libraries, plugins and the bindings, compressed the same ways);
* launch to "protected": ``aegis-tray --timings`` prints when the protected state is first
  shown; a fresh profile per run, bundle and venv interleaved (ratio bundle/venv);
* idle RSS and CPU of the tray app (after "protected") and of the headless ``aegis monitor``
  (after ``started``), over ``--idle`` seconds ("right after start": RSS summed over the
  process and its scan workers, and of the process alone), then again over 10 s once the
  scan workers and their preload server have left ("steady idle", waited for up to
  ``--steady`` s after start); PSS from ``/proc/PID/smaps_rollup``; and of ``clamd``
  (``--clamd``, a clamd binary;
  with a one-signature database, since the real one cannot be downloaded here: its idle RSS
  is a floor, ClamAV's full database takes ~1 GB);
* prints a Markdown table and a JSON line.

The tray app needs a screen: DISPLAY, or Xvfb (started here on a free display number).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import lzma
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
EICAR_MD5 = "44d88612fea8a8f36de82e1278abb02f"


def tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath, name)
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def packed_size(root: Path, how: str) -> int:
    buf = io.BytesIO()
    out: Any = (
        gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0)
        if how == "gz"
        else lzma.LZMAFile(buf, mode="wb", preset=9)  # noqa: SIM115
    )
    with out, tarfile.open(fileobj=out, mode="w") as tar:
        tar.add(root, arcname=root.name)
    return len(buf.getvalue())


@contextlib.contextmanager
def display() -> Iterator[dict[str, str]]:
    if os.environ.get("DISPLAY"):
        yield {}
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        raise SystemExit("bundle_budget: no DISPLAY and no Xvfb")
    for n in range(120, 400):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            break
    proc = subprocess.Popen(
        [xvfb, f":{n}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if Path(f"/tmp/.X11-unix/X{n}").exists():
                break
            time.sleep(0.1)
        yield {"DISPLAY": f":{n}", "QT_QPA_PLATFORM": "xcb"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def tree_usage(proc: psutil.Process) -> tuple[int, float]:
    """RSS (bytes) and CPU seconds of a process and its children."""
    rss, cpu = 0, 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            rss += p.memory_info().rss
            t = p.cpu_times()
            cpu += t.user + t.system
    return rss, cpu


def pss(pid: int) -> int:
    """PSS in bytes (0 when gone)."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def idle_cost(pid: int, seconds: float, prefix: str = "") -> dict[str, float]:
    proc = psutil.Process(pid)
    _, cpu0 = tree_usage(proc)
    t0 = time.monotonic()
    peak = 0
    while time.monotonic() - t0 < seconds:
        time.sleep(1)
        rss, _ = tree_usage(proc)
        peak = max(peak, rss)
    rss, cpu1 = tree_usage(proc)
    wall = time.monotonic() - t0
    kids = proc.children(recursive=True)
    return {
        f"{prefix}rss_mb": rss / 1e6,
        f"{prefix}rss_peak_mb": peak / 1e6,
        f"{prefix}cpu_pct": 100 * (cpu1 - cpu0) / wall,
        f"{prefix}own_rss_mb": proc.memory_info().rss / 1e6,
        f"{prefix}tree_pss_mb": sum(pss(p.pid) for p in [proc, *kids]) / 1e6,
        f"{prefix}processes": 1.0 + len(kids),
    }


def steady_cost(pid: int, started: float, limit: float) -> dict[str, float]:
    """:func:`idle_cost` over 10 s once the process has no scan worker or preload server
    left (only a resource tracker, if any), or at ``limit`` s after ``started``."""
    proc = psutil.Process(pid)

    def pool_left() -> bool:
        kids = [
            k
            for k in proc.children(recursive=True)
            if k.status() != psutil.STATUS_ZOMBIE  # a server gone but not yet reaped
        ]
        return not [k for k in kids if "resource_tracker" not in " ".join(k.cmdline())]

    while time.monotonic() - started < limit:
        with contextlib.suppress(psutil.Error):
            if pool_left():
                break
        time.sleep(1)
    waited = time.monotonic() - started
    return {"steady_after_s": waited, **idle_cost(pid, 10, "steady_")}


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tray_run(argv: list[str], env: dict[str, str], idle: float, limit: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="aegis-budget-") as home:
        run_env = {**os.environ, **env, "AEGIS_HOME": home}
        run_env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        # Its own temp folder (one it protects by default; a shared /tmp is never idle).
        (Path(home) / "tmp").mkdir()
        run_env["TMPDIR"] = str(Path(home) / "tmp")
        errfile = Path(home) / "stderr.txt"
        with errfile.open("wb") as err:
            proc = subprocess.Popen(
                [*argv, "--timings", "--no-notifications"],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=run_env,
                cwd=REPO,
            )
        try:
            deadline = time.monotonic() + 120
            shown = None
            while shown is None and time.monotonic() < deadline and proc.poll() is None:
                for line in errfile.read_text(errors="replace").splitlines():
                    if "protected shown" in line:
                        shown = float(line.split("protected shown ")[1].split()[0])
                time.sleep(0.05)
            if shown is None:
                raise SystemExit(f"tray never protected: {errfile.read_text()[-2000:]}")
            t0 = time.monotonic()
            result = {"protected_s": shown, **idle_cost(proc.pid, idle)}
            result.update(steady_cost(proc.pid, t0, limit))
        finally:
            stop(proc)
    return result


def monitor_run(argv: list[str], idle: float, limit: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="aegis-budget-") as home:
        watched = Path(home) / "watched"
        watched.mkdir()
        proc = subprocess.Popen(
            [*argv, "monitor", str(watched), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "AEGIS_HOME": home},
            cwd=REPO,
        )
        try:
            t0 = time.monotonic()
            assert proc.stdout is not None
            for line in proc.stdout:
                with contextlib.suppress(ValueError):
                    if json.loads(line).get("state") == "started":
                        break
            started = time.monotonic() - t0
            t1 = time.monotonic()
            time.sleep(5)  # the process monitor's first look at every running program
            result = {"started_s": started, **idle_cost(proc.pid, idle)}
            result.update(steady_cost(proc.pid, t1, limit))
        finally:
            stop(proc, signal.SIGINT)
    return result


def clamd_run(clamd: str, idle: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="clamd-budget-") as tmp:
        db = Path(tmp) / "db"
        db.mkdir()
        (db / "onesig.hdb").write_text(f"{EICAR_MD5}:68:Eicar-Test-Signature\n")
        conf = Path(tmp) / "clamd.conf"
        conf.write_text(
            f"DatabaseDirectory {db}\nLocalSocket {tmp}/clamd.sock\nForeground yes\n"
            f"LogFile {tmp}/clamd.log\nPidFile {tmp}/clamd.pid\n"
        )
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [clamd, "--config-file", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while not Path(f"{tmp}/clamd.sock").exists():
                if proc.poll() is not None or time.monotonic() - t0 > 120:
                    log = Path(f"{tmp}/clamd.log")
                    raise SystemExit(f"clamd did not start: {log.read_text()[-1000:]}")
                time.sleep(0.05)
            started = time.monotonic() - t0
            time.sleep(5)
            result = {"started_s": started, **idle_cost(proc.pid, idle)}
        finally:
            stop(proc)
    return result


def clamtk_run(clamtk: str, env: dict[str, str], idle: float) -> dict[str, float]:
    """ClamAV's desktop front-end, ClamTk (Perl, GTK 3), idle in its main window: no
    marker says it is ready, so its figures are taken from 10 s after the start."""
    with tempfile.TemporaryDirectory(prefix="clamtk-budget-") as home:
        run_env = {**os.environ, **env, "HOME": home}
        run_env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        run_env.pop("QT_QPA_PLATFORM", None)
        proc = subprocess.Popen(
            [clamtk], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=run_env
        )
        try:
            time.sleep(10)
            if proc.poll() is not None:
                raise SystemExit(f"clamtk exited at start ({proc.returncode})")
            result = idle_cost(proc.pid, idle)
        finally:
            stop(proc)
    return result


def median(values: list[float]) -> float:
    s = sorted(values)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=REPO / "dist" / "aegis")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--idle", type=float, default=30)
    ap.add_argument("--steady", type=float, default=150, help="longest wait for steady idle")
    ap.add_argument("--clamd", default=shutil.which("clamd"))
    ap.add_argument("--clamtk", default=shutil.which("clamtk"), help="ClamTk, beside the tray")
    ap.add_argument("--size-only", action="store_true", help="sizes only (no launches)")
    args = ap.parse_args()
    bundle = args.bundle.resolve()
    if not (bundle / "aegis").exists():
        raise SystemExit(f"no bundle at {bundle}: run bash packaging/build-linux.sh")
    venv_py = sys.executable
    out: dict[str, Any] = {"cpus": os.cpu_count(), "load": os.getloadavg()[0]}

    qt = next((p for p in (bundle / "_internal" / "PySide6",) if p.exists()), None)
    packages = sorted(bundle.parent.glob("aegis-*-linux-*.tar.xz"), key=lambda p: p.stat().st_mtime)
    out["size"] = {
        "tarxz_mb": (packages[-1].stat().st_size if packages else packed_size(bundle, "xz")) / 1e6,
        "targz_mb": packed_size(bundle, "gz") / 1e6,
        "unpacked_mb": tree_bytes(bundle) / 1e6,
        "qt_unpacked_mb": tree_bytes(qt) / 1e6 if qt else 0.0,
        "qt_tarxz_mb": packed_size(qt, "xz") / 1e6 if qt else 0.0,
        "qt_targz_mb": packed_size(qt, "gz") / 1e6 if qt else 0.0,
    }
    print(json.dumps(out["size"]), flush=True)
    if args.size_only:
        s = out["size"]
        print("| figure | budget | bundle |")
        print("|---|---|---|")
        print(f"| package (tar.xz -9) | ≤ 60 MB | {s['tarxz_mb']:.1f} MB |")
        print(f"| the same as tar.gz -9 | – | {s['targz_mb']:.1f} MB |")
        print(f"| unpacked bundle | – | {s['unpacked_mb']:.1f} MB |")
        print(
            f"| Qt's share (PySide6 folder) | – | {s['qt_tarxz_mb']:.1f} MB of the tar.xz "
            f"({100 * s['qt_tarxz_mb'] / s['tarxz_mb']:.0f} %), {s['qt_unpacked_mb']:.1f} MB "
            f"unpacked, {s['qt_targz_mb']:.1f} MB tar.gz |"
        )
        return 0

    programs = {
        "bundle": [str(bundle / "aegis-tray")],
        "venv": [venv_py, "-m", "aegis_gui.app"],
    }
    tray: dict[str, list[dict[str, float]]] = {k: [] for k in programs}
    monitor: dict[str, list[dict[str, float]]] = {k: [] for k in programs}
    clamd: list[dict[str, float]] = []
    clamtk: list[dict[str, float]] = []
    with display() as env:
        for _ in range(args.runs):
            for name, argv in programs.items():  # interleaved: the same load for both
                tray[name].append(tray_run(argv, env, args.idle, args.steady))
                print(name, "tray", tray[name][-1], flush=True)
            if args.clamtk:
                clamtk.append(clamtk_run(args.clamtk, env, args.idle))
                print("clamtk", clamtk[-1], flush=True)
    mon_argv = {"bundle": [str(bundle / "aegis")], "venv": [venv_py, "-m", "aegis_engine.cli"]}
    for _ in range(args.runs):
        for name, argv in mon_argv.items():
            monitor[name].append(monitor_run(argv, args.idle, args.steady))
            print(name, "monitor", monitor[name][-1], flush=True)
        if args.clamd:
            clamd.append(clamd_run(args.clamd, args.idle))
            print("clamd", clamd[-1], flush=True)

    def med(rows: list[dict[str, float]], key: str) -> float:
        return median([r[key] for r in rows])

    out["tray"] = {k: {m: med(v, m) for m in v[0]} for k, v in tray.items()}
    out["monitor"] = {k: {m: med(v, m) for m in v[0]} for k, v in monitor.items()}
    if clamd:
        out["clamd"] = {m: med(clamd, m) for m in clamd[0]}
    s = out["size"]
    tb, tv = out["tray"]["bundle"], out["tray"]["venv"]
    mb, mv = out["monitor"]["bundle"], out["monitor"]["venv"]
    c = out.get("clamd")
    rows = [
        "| figure | budget | bundle | venv (same code) | bundle/venv | clamd (one signature) |",
        "|---|---|---|---|---|---|",
        f"| package (tar.xz -9) | ≤ 60 MB | {s['tarxz_mb']:.1f} MB "
        f"(as tar.gz -9: {s['targz_mb']:.1f} MB) | – | – | – |",
        f"| unpacked bundle | – | {s['unpacked_mb']:.1f} MB | – | – | – |",
        f"| Qt's share (PySide6 folder) | – | {s['qt_tarxz_mb']:.1f} MB tar.xz, "
        f"{s['qt_unpacked_mb']:.1f} MB unpacked | – | – | – |",
        f"| tray: launch to protected | ≤ 2 s | {tb['protected_s']:.2f} s | "
        f"{tv['protected_s']:.2f} s | {tb['protected_s'] / tv['protected_s']:.2f} | – |",
        f"| tray: idle RSS right after start, with its scan workers | ≤ 100 MB | "
        f"{tb['rss_mb']:.0f} MB | {tv['rss_mb']:.0f} MB | {tb['rss_mb'] / tv['rss_mb']:.2f} | – |",
        f"| tray: the same, the tray process alone | ≤ 100 MB | {tb['own_rss_mb']:.0f} MB | "
        f"{tv['own_rss_mb']:.0f} MB | {tb['own_rss_mb'] / tv['own_rss_mb']:.2f} | – |",
        f"| tray: the same, PSS summed | – | {tb['tree_pss_mb']:.0f} MB | "
        f"{tv['tree_pss_mb']:.0f} MB | – | – |",
        f"| tray: steady idle RSS (scan pool gone: {tb['steady_processes']:.0f} / "
        f"{tv['steady_processes']:.0f} processes at {tb['steady_after_s']:.0f} / "
        f"{tv['steady_after_s']:.0f} s) | ≤ 100 MB | {tb['steady_rss_mb']:.0f} MB | "
        f"{tv['steady_rss_mb']:.0f} MB | {tb['steady_rss_mb'] / tv['steady_rss_mb']:.2f} | – |",
        f"| tray: steady idle PSS | – | {tb['steady_tree_pss_mb']:.0f} MB | "
        f"{tv['steady_tree_pss_mb']:.0f} MB | – | – |",
        f"| tray: steady idle CPU | < 1 % | {tb['steady_cpu_pct']:.2f} % | "
        f"{tv['steady_cpu_pct']:.2f} % | – | – |",
        f"| tray: idle CPU | – | {tb['cpu_pct']:.2f} % | {tv['cpu_pct']:.2f} % | – | – |",
        f"| monitor: start | – | {mb['started_s']:.2f} s | {mv['started_s']:.2f} s | "
        f"{mb['started_s'] / mv['started_s']:.2f} | "
        + (f"{c['started_s']:.2f} s |" if c else "not measured |"),
        f"| monitor: idle RSS right after start, with its scan workers | ≤ 60 MB | "
        f"{mb['rss_mb']:.0f} MB | {mv['rss_mb']:.0f} MB | "
        f"{mb['rss_mb'] / mv['rss_mb']:.2f} | " + (f"{c['rss_mb']:.0f} MB |" if c else "– |"),
        f"| monitor: the same, the monitor process alone | ≤ 60 MB | {mb['own_rss_mb']:.0f} MB | "
        f"{mv['own_rss_mb']:.0f} MB | {mb['own_rss_mb'] / mv['own_rss_mb']:.2f} | – |",
        f"| monitor: the same, PSS summed | – | {mb['tree_pss_mb']:.0f} MB | "
        f"{mv['tree_pss_mb']:.0f} MB | – | – |",
        f"| monitor: steady idle RSS (scan pool gone: {mb['steady_processes']:.0f} / "
        f"{mv['steady_processes']:.0f} processes at {mb['steady_after_s']:.0f} / "
        f"{mv['steady_after_s']:.0f} s) | ≤ 60 MB | {mb['steady_rss_mb']:.0f} MB | "
        f"{mv['steady_rss_mb']:.0f} MB | {mb['steady_rss_mb'] / mv['steady_rss_mb']:.2f} | – |",
        f"| monitor: steady idle PSS | – | {mb['steady_tree_pss_mb']:.0f} MB | "
        f"{mv['steady_tree_pss_mb']:.0f} MB | – | – |",
        f"| monitor: steady idle CPU | < 1 % | {mb['steady_cpu_pct']:.2f} % | "
        f"{mv['steady_cpu_pct']:.2f} % | – | – |",
        f"| monitor: idle CPU | < 1 % | {mb['cpu_pct']:.2f} % | {mv['cpu_pct']:.2f} % | – | "
        + (f"{c['cpu_pct']:.2f} % |" if c else "– |"),
    ]
    print()
    print(
        f"{args.runs} runs each (medians), {args.idle:.0f} s idle windows, {out['cpus']} CPUs, "
        f"load {out['load']:.1f} at the start"
    )
    print("\n".join(rows))
    if clamtk:
        k = out["clamtk"] = {m: med(clamtk, m) for m in clamtk[0]}
        print()
        print("| ClamTk (ClamAV's desktop front-end), idle in its window | RSS | PSS | CPU |")
        print("|---|---|---|---|")
        print(
            f"| ClamTk, {k['processes']:.0f} process(es) | {k['rss_mb']:.0f} MB | "
            f"{k['tree_pss_mb']:.0f} MB | {k['cpu_pct']:.2f} % |"
        )
        print(
            f"| Aegis tray (bundle), steady idle | {tb['steady_rss_mb']:.0f} MB | "
            f"{tb['steady_tree_pss_mb']:.0f} MB | {tb['steady_cpu_pct']:.2f} % |"
        )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
