"""What the scan workers hold: never two large files at once, no resource tracker, and an
on-access pool that gives its memory back soon after its last file."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from conftest import EICAR
from helpers import memory_probe

from aegis_engine import Engine
from aegis_engine.paths import AegisPaths
from aegis_engine.results import Verdict
from aegis_engine.scanning.worker_pool import LARGE_FILE_BYTES


def test_two_large_files_are_never_in_workers_at_once(
    aegis_paths: AegisPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_leaks: None
) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    tree = tmp_path / "tree"
    (tree / "small").mkdir(parents=True)
    small = 40
    monkeypatch.setenv("AEGIS_TEST_DETECTORS", memory_probe.SPEC)
    monkeypatch.setenv(memory_probe.DIR_ENV, str(probe))
    monkeypatch.setenv(memory_probe.SMALL_TOTAL_ENV, str(small))
    for i in range(4):
        with open(tree / f"large-{i}.bin", "wb") as f:
            f.write(b"large file %d\n" % i)
            f.truncate(LARGE_FILE_BYTES + 4096 * i)
    for i in range(small):
        (tree / "small" / f"small-{i}.txt").write_text(f"small file {i}\n")
    (tree / "small" / "eicar.com").write_bytes(EICAR)
    # In this order: a large file, the small ones, the other large ones.
    large = [tree / f"large-{i}.bin" for i in range(4)]
    targets = [large[0], tree / "small", *large[1:]]
    engine = Engine(aegis_paths)
    try:
        summary = engine.scan(targets, engine.default_options(jobs=2, use_cache=False))
    finally:
        engine.close()
    assert summary.files == 4 + small + 1
    assert summary.threats == 1  # the eicar file, among the small ones
    assert all(r.verdict in (Verdict.CLEAN, Verdict.MALICIOUS) for r in summary.reports)
    lines = (probe / "log").read_text().split()
    words = lines[0::2]
    assert sorted(lines[1::2]) == [f"large-{i}.bin" for i in range(4)]
    assert "overlap" not in words, lines
    assert "flowed" in words, lines  # small files went on while a large one was in a worker


def _descendants_after_scan(tree: Path, home: Path) -> list[str]:
    """Command lines of the processes a fresh engine's process has after a scan."""
    script = textwrap.dedent(
        f"""
        import json, psutil
        from pathlib import Path
        from aegis_engine import Engine
        from aegis_engine.paths import AegisPaths
        engine = Engine(AegisPaths.under(Path({str(home)!r})))
        s = engine.scan([{str(tree)!r}], engine.default_options(jobs=2, use_cache=False))
        assert s.threats == 1, s
        kids = psutil.Process().children(recursive=True)
        print(json.dumps([" ".join(p.cmdline()) for p in kids]))
        engine.close()
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=180, check=True
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_no_resource_tracker_process_after_a_scan(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "eicar.com").write_bytes(EICAR)
    for i in range(50):
        (tree / f"clean-{i}.txt").write_text(f"clean {i}\n")
    kids = _descendants_after_scan(tree, tmp_path / "home")
    assert kids, "the scan ran in worker processes (server and workers are still warm)"
    assert not [k for k in kids if "resource_tracker" in k], kids


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_on_access_workers_leave_after_their_idle_time_and_the_next_file_is_scanned(
    aegis_paths: AegisPaths, tmp_path: Path, no_leaks: None
) -> None:
    aegis_paths.settings_file.parent.mkdir(parents=True, exist_ok=True)
    aegis_paths.settings_file.write_text("[realtime]\nworker_idle = 1\n")
    first = tmp_path / "first.com"
    first.write_bytes(EICAR)
    engine = Engine(aegis_paths)
    try:
        report = engine.scan_file(first)
        assert report is not None and report.verdict is Verdict.MALICIOUS
        pool = engine.worker_pool()
        workers = pool.processes
        server = pool.server
        assert workers and server is not None
        assert all(w.idle_timeout == 1 for w in workers)
        pids = [w.process.pid for w in workers]
        deadline = time.monotonic() + 60
        while server.process.is_alive() or not all(_gone(p) for p in pids):
            assert time.monotonic() < deadline, "the on-access workers never left"
            time.sleep(0.2)
        second = tmp_path / "second.com"
        second.write_bytes(EICAR)
        report = engine.scan_file(second)
        assert report is not None and report.verdict is Verdict.MALICIOUS
        assert pool.server is not server and pool.server is not None
        assert not set(pids) & {w.process.pid for w in pool.processes}
    finally:
        engine.close()


def test_a_user_scan_keeps_its_workers_longer_than_on_access(
    aegis_paths: AegisPaths, tmp_path: Path, no_leaks: None
) -> None:
    aegis_paths.settings_file.parent.mkdir(parents=True, exist_ok=True)
    aegis_paths.settings_file.write_text("[realtime]\nworker_idle = 1\n")
    (tmp_path / "eicar.com").write_bytes(EICAR)
    engine = Engine(aegis_paths)
    try:
        summary = engine.scan([tmp_path], engine.default_options(use_cache=False))
        assert summary.threats == 1
        workers = engine.worker_pool().processes
        assert workers and all(w.idle_timeout == pytest.approx(300.0) for w in workers)
        assert all(w.alive for w in workers)
    finally:
        engine.close()


def test_worker_idle_setting_is_validated(aegis_paths: AegisPaths) -> None:
    aegis_paths.settings_file.parent.mkdir(parents=True, exist_ok=True)
    aegis_paths.settings_file.write_text('[realtime]\nworker_idle = "soon"\n')
    engine = Engine(aegis_paths)
    try:
        assert engine.settings.realtime.worker_idle == 30.0
        assert any("worker_idle" in w for w in engine.warnings + list(engine.settings.problems))
    finally:
        engine.close()




CLAM_EXE = Path("/usr/share/clamav-testfiles/clam.exe")


@pytest.mark.skipif(not CLAM_EXE.exists(), reason="needs clamav-testfiles")
def test_workers_with_a_model_of_their_own_give_way_to_ones_sharing_the_servers(
    aegis_paths: AegisPaths, tmp_path: Path, no_leaks: None
) -> None:
    """The first PE file makes a worker load the ML model itself; from then on the pool's
    workers are forked after the server made the session, and the ones forked before are
    replaced once their batches are done: one copy of onnxruntime, not one per worker."""
    (tmp_path / "clam.exe").write_bytes(CLAM_EXE.read_bytes())
    for i in range(60):
        (tmp_path / f"small-{i}.txt").write_text(f"small {i}\n")
    engine = Engine(aegis_paths)
    opts = engine.default_options(jobs=2, use_cache=False)
    try:
        assert engine.scan([tmp_path], opts).threats >= 1
        pool = engine.worker_pool()
        assert pool.model_wanted
        assert all(w.shares_model for w in pool.processes)  # the others were replaced
        assert engine.scan([tmp_path], opts).threats >= 1
        workers = pool.processes
        server = pool.server
        assert workers and server is not None
        assert all(w.shares_model for w in workers)
        assert "onnxruntime" in Path(f"/proc/{server.pid}/maps").read_text()
    finally:
        engine.close()
