"""Scans in worker processes: a detector that hangs, eats memory or crashes costs one file
(``incomplete`` with the reason), the scan goes on, and nothing is left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import EICAR
from helpers import hostile_detectors as hostile
from helpers.monitor_support import Events

from aegis_engine import Engine
from aegis_engine.config import ScanOptions
from aegis_engine.paths import AegisPaths
from aegis_engine.results import FileReport, ScanSummary, Verdict

LIMIT = 3.0  # seconds per file in these tests


@pytest.fixture
def hostile_engine(
    aegis_paths: AegisPaths, monkeypatch: pytest.MonkeyPatch, no_leaks: None
) -> object:
    monkeypatch.setenv("AEGIS_TEST_DETECTORS", hostile.SPEC)
    engine = Engine(aegis_paths, worker_memory_limit=512 << 20)  # hit soon, little touched
    yield engine
    engine.close()


def options(engine: Engine, limit: float = LIMIT, **changes: object) -> ScanOptions:
    return engine.default_options(limits=replace(engine.limits, max_scan_time=limit), **changes)


def by_name(summary: ScanSummary) -> dict[str, FileReport]:
    return {Path(r.path).name: r for r in summary.reports}


def problems(report: FileReport) -> str:
    return " ".join(p for o in report.objects for p in o.problems)


@pytest.mark.parametrize("jobs", [1, 2])
def test_hostile_detectors_cost_one_file_each(
    hostile_engine: Engine, tmp_path: Path, jobs: int
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "1-eicar.com").write_bytes(EICAR)
    (tree / "2-hang.bin").write_bytes(hostile.SLEEP + b"\n")
    (tree / "3-alloc.bin").write_bytes(hostile.ALLOCATE + b"\n")
    (tree / "4-abort.bin").write_bytes(hostile.ABORT + b"\n")
    (tree / "5-eicar.com").write_bytes(EICAR)
    for i in range(20):
        (tree / f"6-clean-{i}.txt").write_text(f"nothing to see {i}\n")
    # The allocating file must reach the memory cap before the time limit, even on a
    # machine loaded many times over: a longer limit here.
    limit = 10.0
    started = time.monotonic()
    summary = hostile_engine.scan(
        [tree], options(hostile_engine, limit, jobs=jobs, use_cache=False)
    )
    assert time.monotonic() - started < limit + 60  # finishes; generous on a loaded machine
    reports = by_name(summary)
    assert summary.files == 25
    assert reports["1-eicar.com"].verdict is Verdict.MALICIOUS
    assert reports["5-eicar.com"].verdict is Verdict.MALICIOUS
    assert reports["2-hang.bin"].verdict is Verdict.INCOMPLETE
    assert "max-scan-time" in problems(reports["2-hang.bin"])
    assert reports["3-alloc.bin"].verdict is Verdict.INCOMPLETE
    assert "memory limit" in problems(reports["3-alloc.bin"])
    assert reports["4-abort.bin"].verdict is Verdict.INCOMPLETE
    assert "SIGABRT" in problems(reports["4-abort.bin"])
    assert set(reports) == {
        "1-eicar.com",
        "2-hang.bin",
        "3-alloc.bin",
        "4-abort.bin",
        "5-eicar.com",
    }
    assert summary.exit_code == 1


def test_on_access_uses_the_same_workers(hostile_engine: Engine, tmp_path: Path) -> None:
    abort = tmp_path / "abort.bin"
    abort.write_bytes(hostile.ABORT)
    eicar = tmp_path / "eicar.com"
    eicar.write_bytes(EICAR)
    report = hostile_engine.scan_file(abort)
    assert report is not None and report.verdict is Verdict.INCOMPLETE
    assert "SIGABRT" in problems(report)
    report = hostile_engine.scan_file(eicar)
    assert report is not None and report.verdict is Verdict.MALICIOUS
    assert os.getpid() not in {p.process.pid for p in hostile_engine.worker_pool().processes}


def test_costly_regex_is_stopped_at_the_time_limit(
    aegis_paths: AegisPaths, tmp_path: Path, no_leaks: None
) -> None:
    """Issue 12 item 3: the rule below took 69 s with a 10 s limit."""
    rules = tmp_path / "costly.yar"
    rules.write_text(
        "rule Costly {\n strings:\n"
        "  $re = /a[a-z]{0,60}[a-z]{0,60}[a-z]{0,60}[a-z]{0,60}b/\n"
        " condition:\n  $re\n}\n"
    )
    target = tmp_path / "scan"
    target.mkdir()
    (target / "a.txt").write_bytes(b"a" * (6 << 20))
    (target / "eicar.com").write_bytes(EICAR)
    engine = Engine(aegis_paths, extra_rules=[rules])
    try:
        started = time.monotonic()
        summary = engine.scan([target], options(engine, use_cache=False))
        took = time.monotonic() - started
    finally:
        engine.close()
    reports = by_name(summary)
    assert reports["a.txt"].verdict is Verdict.INCOMPLETE
    assert reports["eicar.com"].verdict is Verdict.MALICIOUS
    assert took < LIMIT + 30


def test_file_truncated_by_another_process_while_scanned(
    hostile_engine: Engine, tmp_path: Path
) -> None:
    """Issue 12 item 1: reading a mapped file past its new end was SIGBUS."""
    victim = tmp_path / "victim.bin"
    victim.write_bytes(hostile.TRUNCATE + os.urandom(8 << 20))
    report = hostile_engine.scan_file(victim)
    assert report is not None and report.verdict is Verdict.INCOMPLETE
    assert problems(report) == "file changed while scanned"


def test_scanner_itself_survives_truncation(tmp_path: Path, aegis_home: Path) -> None:
    """The same without a worker to absorb a crash: the scanner reads, it does not map."""
    victim = tmp_path / "victim.bin"
    victim.write_bytes(hostile.TRUNCATE + os.urandom(8 << 20))
    script = textwrap.dedent(
        f"""
        import os, pathlib, tempfile
        from aegis_engine.config import ScanOptions
        from aegis_engine.scanning.scanner import FileScanner
        from aegis_engine.scanning.walk import FileEntry
        from helpers.hostile_detectors import HostileDetector
        path = {str(victim)!r}
        scanner = FileScanner([HostileDetector()], ScanOptions(), pathlib.Path(tempfile.mkdtemp()))
        report = scanner.scan_file(FileEntry(path, os.lstat(path)))
        print(report.verdict.value, report.objects[0].problems)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "incomplete ['file changed while scanned']"


def test_growing_file_is_incomplete_not_clean(tmp_path: Path, aegis_paths: AegisPaths) -> None:
    from aegis_engine.scanning.scanner import _read_whole

    path = tmp_path / "grows.log"
    path.write_bytes(b"x" * 1000)
    fd = os.open(path, os.O_RDONLY)
    try:
        with path.open("ab") as fh:
            fh.write(b"more")
        assert _read_whole(fd, 1000) is None
        os.lseek(fd, 0, os.SEEK_SET)
        assert _read_whole(fd, 1004) == b"x" * 1000 + b"more"
    finally:
        os.close(fd)


def test_no_worker_left_after_close(
    aegis_paths: AegisPaths, tmp_path: Path, no_leaks: None
) -> None:
    (tmp_path / "eicar.com").write_bytes(EICAR)
    engine = Engine(aegis_paths)
    summary = engine.scan([tmp_path], engine.default_options(jobs=2, use_cache=False))
    assert summary.threats == 1
    pids = [w.process.pid for w in engine.worker_pool().processes]
    assert pids and os.getpid() not in pids
    engine.close()


def test_workers_that_cannot_start_never_cost_a_detection(
    aegis_paths: AegisPaths, tmp_path: Path, no_leaks: None
) -> None:
    (tmp_path / "eicar.com").write_bytes(EICAR)
    warnings: list[str] = []
    # 16 MiB of address space: no Python process can even start its detectors in that.
    engine = Engine(aegis_paths, worker_memory_limit=16 << 20, on_warning=warnings.append)
    try:
        summary = engine.scan([tmp_path], engine.default_options(use_cache=False))
        single = engine.scan_file(tmp_path / "eicar.com")
    finally:
        engine.close()
    assert summary.threats == 1 and summary.exit_code == 1
    assert single is not None and single.verdict is Verdict.MALICIOUS
    assert any("scan workers could not start" in w for w in warnings)


def test_no_leaks_after_the_monitor_stops(
    aegis_paths: AegisPaths, tmp_path: Path, no_leaks: None
) -> None:
    """On-access scanning goes through the workers too; stopping the monitor and closing the
    engine leaves no thread, process or file descriptor behind."""
    from aegis_engine.monitor import DetectionEvent, Monitor, report_only

    engine = Engine(aegis_paths)
    events = Events()
    try:
        with Monitor(engine, [tmp_path], processes=False, handle=report_only, shield=False) as mon:
            mon.subscribe(events)
            (tmp_path / "eicar.com").write_bytes(EICAR)
            found = events.wait_for(lambda e: isinstance(e, DetectionEvent), 30)
            assert found is not None, events.dicts()
            assert engine.worker_pool().processes, "on-access scanning ran in a worker"
    finally:
        engine.close()


def test_on_access_is_not_held_up_by_a_scan_that_keeps_every_worker_busy(
    aegis_paths: AegisPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_leaks: None
) -> None:
    import threading

    monkeypatch.setenv("AEGIS_TEST_DETECTORS", hostile.SPEC)
    aegis_paths.settings_file.parent.mkdir(parents=True, exist_ok=True)
    aegis_paths.settings_file.write_text("[limits]\nmax_scan_time = 60\n")
    engine = Engine(aegis_paths)  # scans and scan_file share the pool of these limits
    pool = engine.worker_pool()
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(pool.size):  # 8 MiB each: one chunk per file, so one worker per file
        (tree / f"hang-{i}.bin").write_bytes(hostile.SLEEP + bytes(8 << 20))
    eicar = tmp_path / "eicar.com"
    eicar.write_bytes(EICAR)
    summaries: list[ScanSummary] = []
    opts = engine.default_options(use_cache=False)
    scan = threading.Thread(target=lambda: summaries.append(engine.scan([tree], opts)))
    scan.start()
    try:
        deadline = time.monotonic() + 50
        while len([w for w in pool.processes if w.ready]) < pool.size:
            assert time.monotonic() < deadline, "the scan's workers never started"
            time.sleep(0.1)
        report = engine.scan_file(eicar)
        assert report is not None and report.verdict is Verdict.MALICIOUS
        assert scan.is_alive(), "on-access waited for the scan to end"
    finally:
        scan.join(240)
        engine.close()
    assert not scan.is_alive()
    assert {r.verdict for r in summaries[0].reports} == {Verdict.INCOMPLETE}


@pytest.mark.parametrize("marker", [hostile.ABORT, hostile.SLEEP])
def test_a_bad_file_after_quick_ones_in_the_same_batch_is_the_one_blamed(
    hostile_engine: Engine, tmp_path: Path, marker: bytes
) -> None:
    """Results travel a few files at a time, so when a worker dies or is stopped the parent
    may not know which file of its batch it was on: the files it had not reported are scanned
    again one by one, and only the file that did it is reported (never a clean file before
    it, never a detection after it)."""
    files = []
    for i in range(12):
        files.append(tmp_path / f"a-clean-{i}.txt")
        files[-1].write_text(f"nothing to see {i}\n")
    bad = tmp_path / "b-bad.bin"
    bad.write_bytes(marker + b"\n")
    eicar = tmp_path / "c-eicar.com"
    eicar.write_bytes(EICAR)
    after = tmp_path / "d-clean.txt"
    after.write_text("nothing after\n")
    targets = [*files, bad, eicar, after]  # walked in this order: one batch for one worker
    summary = hostile_engine.scan(targets, options(hostile_engine, jobs=1, use_cache=False))
    reports = by_name(summary)
    assert summary.files == len(targets)
    assert set(reports) == {"b-bad.bin", "c-eicar.com"}
    assert reports["b-bad.bin"].verdict is Verdict.INCOMPLETE
    expected = "SIGABRT" if marker == hostile.ABORT else "max-scan-time"
    assert expected in problems(reports["b-bad.bin"])
    assert reports["c-eicar.com"].verdict is Verdict.MALICIOUS
