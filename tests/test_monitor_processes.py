"""The process monitor with real processes: disguised names in user folders, programs deleted
while running, known-bad executables, document programs starting shells, processes that
vanish, and processes of another user."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from helpers.monitor_support import (
    Events,
    needs_root_and_nobody,
    no_thread_leaks,
    run_as_nobody,
    shared_tmp,
)

from aegis_engine import Engine
from aegis_engine.monitor import BehaviourRules, Monitor, MonitorOptions, ProcessEvent
from aegis_engine.monitor.options import FolderKinds
from aegis_engine.monitor.processes import ProcessMonitor
from aegis_engine.paths import AegisPaths

__all__ = ["no_thread_leaks", "shared_tmp"]
pytestmark = pytest.mark.usefixtures("no_thread_leaks")

SLEEP = shutil.which("sleep") or "/bin/sleep"
SH = shutil.which("sh") or "/bin/sh"


@pytest.fixture
def folders(tmp_path: Path) -> FolderKinds:
    for name in ("dl", "tmp"):
        (tmp_path / name).mkdir()
    return FolderKinds({"downloads": (str(tmp_path / "dl"),), "temp": (str(tmp_path / "tmp"),)})


def _monitor(
    engine: Engine, folders: FolderKinds, rules: BehaviourRules | None = None
) -> ProcessMonitor:
    return ProcessMonitor(
        engine.scan_file,
        rules or BehaviourRules.default(engine.paths),
        folders,
        MonitorOptions(),
        on_finding=lambda f: None,
    )


def _copy_exe(src: str, dest: Path) -> Path:
    shutil.copy2(src, dest)
    dest.chmod(0o755)
    return dest


def _spawn(*args: str | Path) -> subprocess.Popen[bytes]:
    p = subprocess.Popen([str(a) for a in args])
    time.sleep(0.1)  # let it exec
    return p


def _end(p: subprocess.Popen[bytes]) -> None:
    p.kill()
    p.wait()


def test_system_name_in_downloads(engine: Engine, folders: FolderKinds, tmp_path: Path) -> None:
    fake = _copy_exe(SLEEP, tmp_path / "dl" / "sshd")
    p = _spawn(fake, "30")
    try:
        finding = _monitor(engine, folders).inspect(p.pid)
        assert finding is not None
        assert [h.id for h in finding.hits] == ["AEGIS-B001"]
        assert "sshd" in finding.hits[0].explanation and str(fake) in finding.hits[0].explanation
    finally:
        _end(p)


def test_program_deleted_while_running(
    engine: Engine, folders: FolderKinds, tmp_path: Path
) -> None:
    exe = _copy_exe(SLEEP, tmp_path / "tmp" / "updater")
    p = _spawn(exe, "30")
    try:
        mon = _monitor(engine, folders)
        assert mon.inspect(p.pid) is None  # nothing wrong yet
        exe.unlink()
        finding = mon.inspect(p.pid)
        assert finding is not None and [h.id for h in finding.hits] == ["AEGIS-B002"]
        # The hash of the running image is still known (read through /proc/<pid>/exe).
        assert finding.facts.sha256 == hashlib.sha256(Path(SLEEP).read_bytes()).hexdigest()
    finally:
        _end(p)


def test_known_bad_executable_by_engine_hash_list_and_by_rule(
    aegis_paths: AegisPaths, folders: FolderKinds, tmp_path: Path
) -> None:
    exe = _copy_exe(SLEEP, tmp_path / "tool")
    digest = hashlib.sha256(exe.read_bytes()).hexdigest()
    hsb = tmp_path / "bad.hsb"
    hsb.write_text(f"{digest}:{exe.stat().st_size}:Aegis.Test.BadTool\n")
    eng = Engine(aegis_paths, extra_hashes=[hsb])
    try:
        p = _spawn(exe, "30")
        try:
            finding = _monitor(eng, folders).inspect(p.pid)
            assert finding is not None and finding.report is not None
            assert finding.report.verdict.value == "malicious"
            assert [h.id for h in finding.hits] == ["AEGIS-B004"]
        finally:
            _end(p)
    finally:
        eng.close()
    eng2 = Engine(aegis_paths)
    try:
        rules = BehaviourRules.default(aegis_paths).with_sha256("AEGIS-B003", [digest])
        p = _spawn(exe, "30")
        try:
            finding = _monitor(eng2, folders, rules).inspect(p.pid)
            assert finding is not None and [h.id for h in finding.hits] == ["AEGIS-B003"]
        finally:
            _end(p)
    finally:
        eng2.close()


def test_document_program_starting_a_shell(
    engine: Engine, folders: FolderKinds, tmp_path: Path
) -> None:
    office = _copy_exe(SH, tmp_path / "soffice.bin")
    p = subprocess.Popen([str(office), "-c", f"{SH} -c 'sleep 30; :' & wait"])
    try:
        mon = _monitor(engine, folders)
        deadline = time.monotonic() + 10
        hits: list[str] = []
        while time.monotonic() < deadline and "AEGIS-B005" not in hits:
            time.sleep(0.1)
            for child in _children(p.pid):
                f = mon.inspect(child)
                hits += [h.id for h in f.hits] if f else []
        assert "AEGIS-B005" in hits
    finally:
        subprocess.run(["pkill", "-KILL", "-P", str(p.pid)], check=False)
        _end(p)  # type: ignore[arg-type]


def _children(pid: int) -> list[int]:
    import psutil

    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def test_new_processes_reach_subscribers_as_events(
    engine: Engine, folders: FolderKinds, tmp_path: Path
) -> None:
    events = Events()
    fake = _copy_exe(SLEEP, tmp_path / "tmp" / "svchost.exe")
    opts = MonitorOptions(process_interval=0.2)
    mon = Monitor(engine, [], shield=False, on_access=False, options=opts, folders=folders,
                  scan_existing_processes=False)  # fmt: skip
    with mon:
        mon.subscribe(events)
        p = _spawn(fake, "30")
        try:
            # Generous: other new processes on this shared machine are scanned first.
            e = events.wait_for(
                lambda e: isinstance(e, ProcessEvent) and e.pid == p.pid, timeout=90
            )
        finally:
            _end(p)
    assert isinstance(e, ProcessEvent)
    d = e.to_dict()
    assert d["event"] == "process" and d["pid"] == p.pid and d["path"] == str(fake)
    assert d["verdict"] == "suspicious" and d["action"] == "report"
    assert d["rules"][0]["id"] == "AEGIS-B001"
    assert mon.stats()["processes"]["polls"] >= 1


def test_a_process_seen_before_it_execs_is_looked_at_again(
    engine: Engine, folders: FolderKinds, tmp_path: Path
) -> None:
    fake = _copy_exe(SLEEP, tmp_path / "dl" / "lsass.exe")
    mon = _monitor(engine, folders)
    mon.poll_once()  # everything already running is known now
    p = subprocess.Popen([SH, "-c", f"sleep 1; exec {fake} 30"])
    try:
        first = [f for f in mon.poll_once() if f.facts.pid == p.pid]
        assert first == [] and p.pid in mon._known  # seen, still the shell
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{p.pid}/exe") != str(fake):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        again = [f for f in mon.poll_once() if f.facts.pid == p.pid]
        assert [h.id for f in again for h in f.hits] == ["AEGIS-B001"]
    finally:
        _end(p)  # type: ignore[arg-type]


def test_a_process_that_exits_before_it_is_looked_at(engine: Engine, folders: FolderKinds) -> None:
    p = subprocess.Popen(["true"])
    p.wait()
    mon = _monitor(engine, folders)
    assert mon.inspect(p.pid) is None
    assert mon.stats.vanished == 1
    # A burst of short-lived processes while polling: no crash, and they are counted.
    procs = [subprocess.Popen(["true"]) for _ in range(30)]
    mon.poll_once()
    for q in procs:
        q.wait()
    mon.poll_once()


def test_another_users_processes(engine: Engine, folders: FolderKinds, shared_tmp: Path) -> None:
    """Root sees a uid-65534 process fully; uid 65534 looking at a root process gets no
    executable (permission denied): reported as inaccessible, no crash."""
    py = needs_root_and_nobody()
    theirs = subprocess.Popen([SLEEP, "30"], user=65534)
    ours = subprocess.Popen([SLEEP, "30"])
    try:
        time.sleep(0.1)
        facts = _monitor(engine, folders).facts(theirs.pid)
        assert facts is not None and facts.user == "nobody" and facts.exe is not None
        code = (
            "import sys\n"
            "from aegis_engine.monitor.behaviour import BehaviourRules\n"
            "from aegis_engine.monitor.options import FolderKinds, MonitorOptions\n"
            "from aegis_engine.monitor.processes import ProcessMonitor\n"
            "from aegis_engine.paths import AegisPaths\n"
            "paths = AegisPaths.default()\n"
            "m = ProcessMonitor(lambda p: None, BehaviourRules.default(paths), FolderKinds(),\n"
            "                   MonitorOptions(), on_finding=print)\n"
            "f = m.facts(int(sys.argv[1]))\n"
            "print(f.name, f.exe, m.stats.inaccessible)\n"
            "print(len(m.poll_once()) >= 0)\n"
        )
        out = run_as_nobody(py, shared_tmp, code, str(ours.pid))
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == ["sleep None 1", "True"]
    finally:
        for q in (theirs, ours):
            _end(q)  # type: ignore[arg-type]
