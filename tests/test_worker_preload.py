"""Issue 13: scan workers are forked from one preload server that loaded the detectors'
content once (they share it copy-on-write); the engine's own process loads none of it; a
content update reaches new workers through a new server; a server that dies costs no file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
from conftest import EICAR
from helpers import hostile_detectors as hostile

from aegis_engine import Engine
from aegis_engine.paths import AegisPaths
from aegis_engine.results import ScanSummary, Verdict
from aegis_engine.scanning import zygote

CLAM_EXE = Path("/usr/share/clamav-testfiles/clam.exe")
pytestmark = pytest.mark.skipif(not zygote.supported(), reason="no pidfds on this platform")


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def _shared_dirty_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Shared_Dirty:"):
            return int(line.split()[1]) // 1024
    return 0


def test_parent_loads_no_detector_content(tmp_path: Path, aegis_home: Path) -> None:
    """After a scan (scan cache on: the cache's key needs the detectors' versions) and an
    on-access scan, the engine's process holds no detector, no compiled rules, and has not
    even imported onnxruntime or numpy; the workers did the scanning."""
    (tmp_path / "eicar.com").write_bytes(EICAR)
    pe = Path("/usr/share/clamav-testfiles/clam.exe")
    if pe.exists():
        (tmp_path / "clam.exe").write_bytes(pe.read_bytes())
    script = textwrap.dedent(
        f"""
        import gc, json, sys
        from aegis_engine import Engine
        engine = Engine()
        summary = engine.scan([{str(tmp_path)!r}], engine.default_options())
        single = engine.scan_file({str(tmp_path / "eicar.com")!r})
        held = sorted({{
            type(o).__module__ + "." + type(o).__name__
            for o in gc.get_objects()
            if str(type(o).__module__).startswith(("aegis_engine.detectors", "aegis_engine.ml",
                                                   "yara"))
            and not isinstance(o, type) and type(o).__name__ not in ("FeatureStatus",)
        }})
        modules = [m for m in ("onnxruntime", "numpy") if m in sys.modules]
        pool = engine.worker_pool()
        # Workers that made their own model session are replaced once done (the pool's
        # later workers share the server's): the server is left, or the workers are.
        pids = [w.process.pid for w in pool.processes] + ([pool.server.pid] if pool.server else [])
        print(json.dumps([summary.threats, single.verdict.value, held, modules, pids]))
        engine.close()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    import json

    threats, single, held, modules, pids = json.loads(done.stdout.strip().splitlines()[-1])
    assert threats >= 1 and single == "malicious"
    assert held == [], "detector objects or content left in the engine's process"
    assert modules == []
    assert pids, "the scan ran in workers"


def test_workers_are_forked_from_one_server_that_holds_the_content(
    aegis_paths: AegisPaths, tmp_path: Path, no_leaks: None
) -> None:
    for i in range(40):
        (tmp_path / f"f{i}.txt").write_text(f"file {i}\n" * 50)
    (tmp_path / "eicar.com").write_bytes(EICAR)
    engine = Engine(aegis_paths)
    try:
        summary = engine.scan([tmp_path], engine.default_options(jobs=2, use_cache=False))
        assert summary.threats == 1
        pool = engine.worker_pool()
        server = pool.server
        assert server is not None and server.pid != os.getpid()
        workers = pool.processes
        assert workers
        for w in workers:
            assert psutil.Process(w.process.pid).ppid() == server.pid
            # The content was loaded in the server before the worker was forked: much of
            # the worker's memory is shared with it (a worker started on its own shares
            # ~4 MiB, the imports of the fork server, with anything).
            assert _shared_dirty_mib(w.process.pid) >= 8
    finally:
        engine.close()
    assert server is not None and not psutil.pid_exists(server.pid)  # stopped and reaped


def _scan_in_thread(
    engine: Engine, tree: Path, **changes: object
) -> tuple[threading.Thread, list[ScanSummary]]:
    out: list[ScanSummary] = []
    opts = engine.default_options(
        limits=replace(engine.limits, max_scan_time=3.0), use_cache=False, **changes
    )
    thread = threading.Thread(target=lambda: out.append(engine.scan([tree], opts)))
    thread.start()
    return thread, out


def test_killing_the_server_mid_scan_loses_no_file(
    aegis_paths: AegisPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_leaks: None
) -> None:
    monkeypatch.setenv("AEGIS_TEST_DETECTORS", hostile.SPEC)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "0-hang.bin").write_bytes(hostile.SLEEP + b"\n")
    (tree / "1-abort.bin").write_bytes(hostile.ABORT + b"\n")
    for i in range(30):
        (tree / f"2-clean-{i}.txt").write_text(f"nothing to see {i}\n")
    (tree / "3-eicar.com").write_bytes(EICAR)
    engine = Engine(aegis_paths)
    try:
        pool = engine.worker_pool(replace(engine.limits, max_scan_time=3.0))
        thread, out = _scan_in_thread(engine, tree, jobs=1)
        deadline = time.monotonic() + 120
        while pool.server is None or not any(w.ready for w in pool.processes):
            assert time.monotonic() < deadline, "no worker started"
            time.sleep(0.05)
        first = pool.server
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        thread.join(240)
        assert not thread.is_alive()
        summary = out[0]
        reports = {Path(r.path).name: r for r in summary.reports}
        assert summary.files == 33  # every file was scanned or reported, none lost
        assert reports["3-eicar.com"].verdict is Verdict.MALICIOUS
        assert reports["0-hang.bin"].verdict is Verdict.INCOMPLETE
        assert reports["1-abort.bin"].verdict is Verdict.INCOMPLETE
        assert summary.exit_code == 1
        # The workers after the kill came from a new server.
        assert pool.server is not None and pool.server.pid != first.pid
        again = engine.scan([tree / "3-eicar.com"], engine.default_options(use_cache=False))
        assert again.threats == 1
    finally:
        engine.close()


def test_content_update_reaches_new_workers_through_a_new_server(
    aegis_paths: AegisPaths, tmp_path: Path, no_leaks: None
) -> None:
    from aegis_engine.updates import check_for_updates
    from tests.https_server import https_server
    from tests.update_support import add_hash_line, make_repo

    sample = tmp_path / "sample.bin"
    sample.write_bytes(b"aegis preload test sample " + os.urandom(64))
    import hashlib

    digest = hashlib.sha256(sample.read_bytes()).hexdigest()
    repo = make_repo(tmp_path)
    content = repo.content("v1")
    add_hash_line(content, digest, sample.stat().st_size, "Test.PreloadSample")
    assert repo.release(content) == 1
    engine = Engine(aegis_paths)
    try:
        before = engine.scan([sample], engine.default_options(use_cache=False))
        assert before.threats == 0
        old = engine.worker_pool().server
        assert old is not None
        old_pid = old.pid
        with https_server(tmp_path, root=repo.root) as srv:
            aegis_paths.ensure(aegis_paths.config_dir)
            aegis_paths.settings_file.write_text(f'[updates]\nca_file = "{srv.ca_file}"\n')
            result = check_for_updates(aegis_paths, server=srv.url, root_file=repo.root_json)
        assert result.result == "updated", result.reason
        after = engine.scan([sample], engine.default_options(use_cache=False))
        assert after.threats == 1
        assert after.reports[0].findings[0].name == "Test.PreloadSample"
        new = engine.worker_pool().server
        assert new is not None and new.pid != old_pid
        deadline = time.monotonic() + 30  # the retired server exits with its last worker
        while psutil.pid_exists(old_pid) and psutil.Process(old_pid).status() != "zombie":
            assert time.monotonic() < deadline, "the retired server is still running"
            time.sleep(0.1)
    finally:
        engine.close()


@pytest.mark.skipif(not CLAM_EXE.exists(), reason="clamav-testfiles not installed")
def test_the_model_is_loaded_in_the_server_once_a_worker_needed_it(
    aegis_paths: AegisPaths, tmp_path: Path, no_leaks: None
) -> None:
    """No process pays for onnxruntime until a PE file is met; then the workers forked
    after that share one model session, made in the server, and no worker makes its own."""
    (tmp_path / "eicar.com").write_bytes(EICAR)
    engine = Engine(aegis_paths)
    opts = engine.default_options(use_cache=False)
    try:
        assert engine.scan_file(tmp_path / "eicar.com") is not None
        assert engine.scan([tmp_path], opts).threats == 1
        pool = engine.worker_pool()
        server = pool.server
        assert server is not None and not pool.model_wanted
        assert "onnxruntime" not in _maps(server.pid)
        (tmp_path / "clam.exe").write_bytes(CLAM_EXE.read_bytes())
        assert engine.scan([tmp_path], opts).threats >= 1
        # The worker that met clam.exe handed it back instead of making its own session;
        # the server made one, and the worker forked next scanned clam.exe with it.
        assert pool.model_wanted
        assert pool.server is server
        assert "onnxruntime" in _maps(server.pid)
        for w in pool.processes:
            assert w.shares_model and "onnxruntime" in _maps(w.process.pid)
        for w in pool.processes:  # the next scan needs new workers
            os.kill(w.process.pid, signal.SIGKILL)
        assert engine.scan([tmp_path], opts).threats >= 1
        assert pool.server is server
        for w in pool.processes:
            assert "onnxruntime" in _maps(w.process.pid)
    finally:
        engine.close()


def test_an_idle_server_leaves_and_the_next_scan_starts_another(
    aegis_paths: AegisPaths, tmp_path: Path, no_leaks: None
) -> None:
    (tmp_path / "eicar.com").write_bytes(EICAR)
    engine = Engine(aegis_paths)
    try:
        pool = engine.worker_pool()
        pool.config = replace(pool.config, idle_timeout=1.0)
        opts = engine.default_options(use_cache=False)
        assert engine.scan([tmp_path], opts).threats == 1
        first = pool.server
        assert first is not None
        deadline = time.monotonic() + 60  # its workers leave after 1 s idle, then it does
        while first.alive:
            assert time.monotonic() < deadline, "the idle server never left"
            time.sleep(0.1)
        assert engine.scan([tmp_path], opts).threats == 1
        assert pool.server is not None and pool.server.pid != first.pid
    finally:
        engine.close()
