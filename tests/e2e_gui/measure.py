"""Measures the tray app's targets under Xvfb (run inside ``xvfb-run -a -s "-screen 0
1280x800x24" dbus-run-session --``; it starts dunst and trayer itself).

    measure.py launch [RUNS]      launch to "protected" shown, idle RSS after 10 s, and
                                  whether onnxruntime is loaded (the real app, a subprocess;
                                  it watches a quiet folder unless settings.toml exists)
    measure.py scan TARGET        the longest the GUI thread went without running its event
                                  loop (a 10 ms timer) during a scan of TARGET in the app,
                                  with the scan window showing progress

AEGIS_HOME must point to a scratch profile. Prints one ``MEASURE {json}`` line.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.e2e_gui.helpers import start_tray_host

REPO = Path(__file__).resolve().parents[2]


def _helpers() -> list[subprocess.Popen[bytes]]:
    procs = [
        subprocess.Popen(["dunst"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        start_tray_host(),
    ]
    time.sleep(1.0)
    return procs


def _rss_mb(pid: int) -> float:
    import psutil

    return float(psutil.Process(pid).memory_info().rss) / 1e6


def _loaded(pid: int, needle: str) -> bool:
    try:
        return needle in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def launch(runs: int) -> dict[str, object]:
    """The usual start: consent already chosen (no first-run dialog), vault key in a file."""
    from aegis_engine import AegisPaths
    from aegis_engine.privacy import ConsentStore

    paths = AegisPaths.default()
    ConsentStore.for_paths(paths).mark_reviewed()
    quiet = paths.data_dir.parent / "watched"  # not /tmp, where other programs write
    quiet.mkdir(parents=True, exist_ok=True)
    if not paths.settings_file.exists():
        paths.settings_file.write_text(
            f'[realtime]\nfolders = ["{quiet}"]\n\n[quarantine]\nuse_keyring = false\n'
        )
    helpers = _helpers()
    times: list[float] = []
    rss: list[float] = []
    onnx: list[bool] = []
    try:
        for _ in range(runs):
            env = {**os.environ, "QT_QPA_PLATFORM": "xcb"}
            app = subprocess.Popen(
                [sys.executable, "-m", "aegis_gui.app", "--timings"],
                cwd=REPO,
                env=env,
                stderr=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                text=True,
            )
            assert app.stderr is not None
            line = ""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                line = app.stderr.readline()
                if not line or "protected shown" in line:
                    break
            if "protected shown" not in line:
                app.kill()
                raise RuntimeError(f"no protected state: {line!r}")
            times.append(float(line.split("shown ")[1].split(" s")[0]))
            time.sleep(10)  # idle
            rss.append(_rss_mb(app.pid))
            onnx.append(_loaded(app.pid, "onnxruntime"))
            app.terminate()
            app.wait(30)
    finally:
        for h in helpers:
            h.terminate()
    return {
        "runs": runs,
        "launch_to_protected_s": times,
        "launch_median_s": statistics.median(times),
        "idle_rss_mb": [round(r, 1) for r in rss],
        "onnxruntime_loaded_when_idle": onnx,
    }


def scan(target: str) -> dict[str, object]:
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    helpers = _helpers()
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from aegis_engine import AegisPaths
    from aegis_gui.controller import Options, TrayApp

    app = QApplication(["aegis-tray"])
    app.setQuitOnLastWindowClosed(False)
    tray_app = TrayApp(AegisPaths.default(), Options(first_run=False, protection=False))
    gaps: list[float] = []
    last = [time.perf_counter()]
    peak = [0.0]
    big: list[tuple[float, float]] = []  # (when, gap) of gaps over 100 ms
    big_where: list[str] = []  # the file shown as current when each ended
    gc_pauses: list[tuple[float, int, float]] = []  # (when, generation, seconds) over 20 ms
    gc_start = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            gc_start[0] = now
        elif now - gc_start[0] > 0.02:
            gc_pauses.append((now, info["generation"], now - gc_start[0]))

    import gc

    gc.callbacks.append(on_gc)

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        if now - last[0] > 0.1:
            big.append((now, now - last[0]))
            window = tray_app.scan_view.window
            big_where.append(window.current.full_text() if window is not None else "")
        last[0] = now
        if len(gaps) % 100 == 0:
            peak[0] = max(peak[0], _rss_mb(os.getpid()))

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    stacks: dict[str, int] = {}
    stop_watch = threading.Event()
    gui_ident = threading.get_ident()

    def watchdog() -> None:
        """When the GUI's timer is late, note where the other threads are (diagnosis)."""
        while not stop_watch.wait(0.02):
            if time.perf_counter() - last[0] < 0.08:
                continue
            for ident, frame in sys._current_frames().items():
                if ident in (gui_ident, threading.get_ident()):
                    continue
                where = []
                f: Any = frame
                while f is not None and len(where) < 3:
                    where.append(f"{Path(f.f_code.co_filename).name}:{f.f_lineno}")
                    f = f.f_back
                key = " < ".join(where)
                stacks[key] = stacks.get(key, 0) + 1

    if os.environ.get("AEGIS_MEASURE_STACKS"):
        threading.Thread(target=watchdog, daemon=True).start()
    try:
        tray_app.start()
        tray_app.show_scan()
        timer.start()
        started = time.perf_counter()
        tray_app.start_scan("full", [target])
        while tray_app.scans.running or tray_app.scans.last_summary is None:
            app.processEvents()
            time.sleep(0.001)
        elapsed = time.perf_counter() - started
        timer.stop()
        summary = tray_app.scans.last_summary
        ordered = sorted(gaps)
        return {
            "target": target,
            "files": summary.files,
            "bytes": summary.bytes,
            "threats": summary.threats,
            "incomplete": summary.incomplete,
            "seconds": round(elapsed, 1),
            "ticks": len(gaps),
            "max_gap_ms": round(ordered[-1] * 1000, 1),
            "p99_gap_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 1),
            "p999_gap_ms": round(ordered[int(len(ordered) * 0.999)] * 1000, 1),
            "gaps_over_100ms": sum(g > 0.1 for g in gaps),
            "gaps_over_50ms": sum(g > 0.05 for g in gaps),
            "peak_rss_mb": round(peak[0], 1),
            "gc_pauses_over_20ms": [(g, round(s * 1000)) for _, g, s in gc_pauses][:20],
            "big_gaps_during_gc": sum(
                any(w - gap <= t <= w for t, _, _ in gc_pauses) for w, gap in big
            ),
            "big_gaps": [round(g * 1000) for _, g in big][:30],
            "late_stacks": sorted(stacks.items(), key=lambda kv: -kv[1])[:12],
            "big_gaps_at": big_where[:30],
        }
    finally:
        stop_watch.set()
        tray_app.shutdown()
        for h in helpers:
            h.terminate()


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("launch", "scan"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    if sys.argv[1] == "launch":
        out = launch(int(sys.argv[2]) if len(sys.argv) > 2 else 3)
    else:
        out = scan(sys.argv[2] if len(sys.argv) > 2 else str(Path.home()))
    print("MEASURE " + json.dumps(out), flush=True)
