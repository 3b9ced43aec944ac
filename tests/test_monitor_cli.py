"""``aegis monitor`` as a user runs it: a real process, JSON lines, signals, commands."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import EICAR, json_lines_until, reaped, run_cli
from helpers.monitor_support import SIM, make_documents, originals_left


def _start(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "aegis_engine.cli", "monitor", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        env=os.environ.copy(),
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_json_lines_and_a_clean_stop_on_signals(tmp_path: Path, sig: signal.Signals) -> None:
    watched = tmp_path / "Downloads"
    watched.mkdir()
    # SIGINT with everything on (process monitor included), SIGTERM without processes.
    extra = ("--no-processes",) if sig == signal.SIGTERM else ()
    proc = _start(str(watched), "--json", *extra)
    with reaped(proc):
        started = json_lines_until(proc, lambda d: d.get("state") == "started")[-1]
        assert started["event"] == "status" and started["watched"] == [str(watched)]
        assert started["process_monitor"] is (sig == signal.SIGINT)
        canaries = [p for p in watched.iterdir() if p.name.startswith(".~")]
        assert len(canaries) == 1
        t = time.monotonic()
        (watched / "eicar.com").write_bytes(EICAR)
        det = json_lines_until(proc, lambda d: d["event"] == "detection")[-1]
        assert time.monotonic() - t < 10
        assert det["path"] == str(watched / "eicar.com")
        assert det["verdict"] == "malicious" and det["action"] == "quarantine"
        assert isinstance(det["ts"], float)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    last = json.loads(out.splitlines()[-1])
    assert last["event"] == "status" and last["state"] == "stopped"
    assert not any(p.name.startswith(".~") for p in watched.iterdir()), "canary left behind"
    assert not (watched / "eicar.com").exists()


def test_human_output_and_bad_arguments(tmp_path: Path) -> None:
    res = run_cli("monitor", str(tmp_path / "missing"))
    assert res.returncode == 2 and "not a folder" in res.stderr
    watched = tmp_path / "w"
    watched.mkdir()
    proc = _start(str(watched), "--no-processes", "--no-shield", "--report-only")
    with reaped(proc):
        assert proc.stderr is not None and proc.stdout is not None
        line = proc.stderr.readline()
        assert "monitoring 1 folder" in line
        (watched / "e.com").write_bytes(EICAR)
        out = proc.stdout.readline()
        assert out.startswith("MALICIOUS") and "EICAR-Test-File" in out and "report" in out
        assert "the monitor only reports" in out
        proc.terminate()
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert (watched / "e.com").exists()  # --report-only


def test_ransomware_alert_and_kill_command(tmp_path: Path) -> None:
    """Monitor and simulator in their own PID namespace: the shield can only ever stop the
    simulator, whatever happens on the rest of this shared machine."""
    import psutil

    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        pytest.skip("unshare/nsenter not available")
    ok = subprocess.run(["unshare", "-Urpf", "--mount-proc", "true"], capture_output=True)
    if ok.returncode != 0:
        pytest.skip("no user/PID namespaces here")
    folder = tmp_path / "Documents"
    docs = make_documents(folder, 300)
    proc = _start(
        str(folder), "--json", "--no-processes", prefix=("unshare", "-Urpf", "--mount-proc")
    )
    monitor = _child_of(proc.pid)  # unshare -f runs the monitor as its child
    sim: subprocess.Popen[str] | None = None
    try:
        json_lines_until(proc, lambda d: d.get("state") == "started")
        sim = subprocess.Popen(  # enters the monitor's namespaces, forks the simulator
            ["nsenter", "-t", str(monitor.pid), "-U", "-p", "-m", "--preserve-credentials",
             sys.executable, str(SIM), str(folder), "--rate", "40"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        alert = json_lines_until(proc, lambda d: d["event"] == "ransomware")[-1]
        assert alert["action"] == "suspended"
        lost = len(docs) - originals_left(folder, docs)
        assert lost <= 10
        assert proc.stdin is not None
        proc.stdin.write(f"kill {alert['incident']}\n")
        proc.stdin.flush()
        killed = json_lines_until(
            proc, lambda d: d["event"] == "ransomware" and d["action"] != "suspended"
        )
        assert killed[-1]["action"] == "killed"
        # nsenter stops itself when its child is stopped (util-linux continue_as_child):
        # wake it so that it reaps the killed simulator and exits.
        sim.send_signal(signal.SIGCONT)
        assert sim.wait(10) != 0
        monitor.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert proc.returncode == 0  # unshare exits with the monitor's status
    finally:
        for p in [*(_tree(sim.pid) if sim else []), *_tree(proc.pid)]:
            with contextlib.suppress(psutil.Error):
                p.kill()
        for q in (sim, proc):
            if q is not None and q.poll() is None:
                q.kill()
                q.communicate()


def _tree(pid: int) -> list[Any]:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _child_of(pid: int) -> Any:
    import psutil

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        kids = psutil.Process(pid).children()
        if kids:
            return kids[0]
        time.sleep(0.02)
    raise AssertionError("no monitor process under unshare")
