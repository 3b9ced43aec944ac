"""Storage faults never cost a detection (issue 12, item 4).

A full disk, a read-only profile, a history or scan cache that is damaged or replaced by a
folder: no traceback, no exit 1 on a clean tree, EICAR still reported (exit 1), damaged
databases moved aside once with a warning. The read-only and full-disk cases mount a real
read-only / tiny tmpfs in a private mount namespace (``unshare -m``) where the machine allows
it (root ignores mode bits, so ``chmod`` proves nothing), and always run through an
EROFS/ENOSPC shim in-process as well.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EICAR, json_lines_until, reaped, run_cli

from aegis_engine import crashlog
from aegis_engine.cli import main as cli_main
from aegis_engine.history import History
from aegis_engine.paths import AegisPaths
from aegis_engine.scanning.cache import ScanCache

pytestmark = pytest.mark.usefixtures("no_leaks")


def _trees(tmp_path: Path) -> tuple[Path, Path]:
    infected = tmp_path / "infected"
    infected.mkdir()
    (infected / "eicar.com").write_bytes(EICAR)
    (infected / "notes.txt").write_text("nothing")
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "a.txt").write_text("hello")
    return infected, clean


def _assert_eicar_reported(r: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert lines[-1]["summary"]["threats"] == 1
    assert any(o.get("verdict") == "malicious" and o["path"].endswith("eicar.com") for o in lines)


def _assert_clean(r: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)


# -- damaged databases ----------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["garbage", "folder"])
def test_damaged_scan_cache_is_moved_aside_once(
    tmp_path: Path, aegis_paths: AegisPaths, damage: str
) -> None:
    infected, clean = _trees(tmp_path)
    cache = aegis_paths.scan_cache_file
    cache.parent.mkdir(parents=True)
    if damage == "folder":
        cache.mkdir()
        (cache / "inside").write_text("x")
    else:
        cache.write_bytes(b"this is not a database" * 100)
    r = run_cli("scan", str(clean))
    _assert_clean(r)
    assert r.stderr.count("scan cache") == 1, r.stderr
    assert "moved to scan-cache.sqlite3.corrupt-" in r.stderr
    aside = list(cache.parent.glob("scan-cache.sqlite3.corrupt-*"))
    assert len(aside) == 1
    assert cache.is_file()
    r = run_cli("scan", "--json", str(infected))
    _assert_eicar_reported(r)
    assert "scan cache" not in r.stderr  # rebuilt: said once


def _scan_then_damage(tmp_path: Path, database: Path, *statements: tuple[str, ...]) -> Path:
    """Scan the infected tree once (EICAR reported), then run ``statements`` (SQL and its
    parameters) on the database that scan wrote. The infected tree."""
    infected, _ = _trees(tmp_path)
    r = run_cli("scan", "--json", str(infected))
    _assert_eicar_reported(r)
    db = sqlite3.connect(database)
    with db:
        for sql, *params in statements:
            db.execute(sql, params)
    db.close()
    return infected


def test_scan_cache_with_bad_rows_is_a_miss(tmp_path: Path, aegis_paths: AegisPaths) -> None:
    infected = _scan_then_damage(
        tmp_path,
        aegis_paths.scan_cache_file,
        ("UPDATE files SET report = '[1, 2', sha256 = 42",),
        ("INSERT INTO files VALUES ('x', 'y', 'z', 1, 2, 'v', NULL, '{}')",),
    )
    r = run_cli("scan", "--json", str(infected))
    _assert_eicar_reported(r)


def test_scan_cache_damaged_pages_in_use(tmp_path: Path, aegis_paths: AegisPaths) -> None:
    """A cache whose pages are damaged after it opened: lookups fail, the scan goes on."""
    warnings: list[str] = []
    path = aegis_paths.scan_cache_file
    cache = ScanCache(path, "v1", warnings.append)
    st = os.stat(__file__)
    assert cache.get(__file__, st) is None
    cache.close()
    size = path.stat().st_size
    with open(path, "r+b") as fh:  # keep the header, smash every page after it
        fh.seek(100)
        fh.write(os.urandom(max(size, 8192) - 100))
    cache = ScanCache(path, "v1", warnings.append)
    assert cache.get(__file__, st) is None
    cache.close()
    assert len(warnings) <= 1


def test_history_not_a_database(tmp_path: Path, aegis_paths: AegisPaths) -> None:
    infected, _ = _trees(tmp_path)
    aegis_paths.history_file.parent.mkdir(parents=True)
    aegis_paths.history_file.write_bytes(b"garbage" * 100)
    r = run_cli("scan", "--json", str(infected))
    _assert_eicar_reported(r)
    assert "history" in r.stderr and "corrupt-" in r.stderr
    r = run_cli("history")
    assert r.returncode == 0, r.stderr
    assert "eicar.com" in r.stdout


def test_history_bad_rows_are_skipped(tmp_path: Path, aegis_paths: AegisPaths) -> None:
    infected = _scan_then_damage(
        tmp_path,
        aegis_paths.history_file,
        ("INSERT INTO events (time_us, kind, path, rules) VALUES (1, 'detection', 'x', '{{')",),
        ("INSERT INTO events (time_us, kind, path) VALUES ('soon', 'action', 'y')",),
        ("INSERT INTO events (time_us, kind, path, detections) VALUES (2, 'x', 'z', '[1]')",),
        (
            "INSERT INTO events (time_us, kind, path, rules) VALUES (3, 'detection', 'w', ?)",
            "[" * 100_000,
        ),
    )
    r = run_cli("history")
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 0, r.stderr
    assert "eicar.com" in r.stdout
    assert "4 damaged row(s)" in r.stderr
    r = run_cli("history", "export", "--ecs", str(tmp_path / "out.jsonl"))
    assert r.returncode == 0, r.stderr
    r = run_cli("scan", "--json", str(infected))
    _assert_eicar_reported(r)


# -- read-only profile and full disk, for real (mount namespace) ----------------------------


def _can_unshare() -> bool:
    if not shutil.which("unshare") or sys.platform != "linux":
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


needs_mounts = pytest.mark.skipif(
    not _can_unshare(), reason="cannot mount a tmpfs in a private mount namespace here"
)


def _in_namespace(
    mnt: Path, setup: str, *aegis_args: str, size: str = "1m"
) -> subprocess.CompletedProcess[str]:
    """Run ``aegis`` with AEGIS_HOME on a fresh tmpfs at ``mnt``, after the shell ``setup``."""
    home = mnt / "home"
    cli = " ".join(f"'{a}'" for a in [sys.executable, "-m", "aegis_engine.cli", *aegis_args])
    script = f"mount -t tmpfs -o size={size},mode=0700 tmpfs '{mnt}' && {setup} && exec {cli}"
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "AEGIS_HOME": str(home)},
    )


@needs_mounts
@pytest.mark.parametrize("prepared", [False, True], ids=["empty", "with-folders"])
def test_read_only_profile(tmp_path: Path, prepared: bool) -> None:
    infected, clean = _trees(tmp_path)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    make = f"mkdir -p '{mnt}/home/cache' '{mnt}/home/data' '{mnt}/home/config'"
    ro = f"mount -o remount,ro '{mnt}'"
    setup = f"{make} && {ro}" if prepared else ro
    _assert_eicar_reported(_in_namespace(mnt, setup, "scan", "--json", str(infected)))
    r = _in_namespace(mnt, setup, "scan", "--json", "--quarantine", str(infected))
    _assert_eicar_reported(r)
    assert "Not quarantined" in r.stdout or "cannot quarantine" in r.stdout
    _assert_clean(_in_namespace(mnt, setup, "scan", str(clean)))


@needs_mounts
def test_full_disk_profile(tmp_path: Path) -> None:
    infected, clean = _trees(tmp_path)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    fill = (
        f"mkdir -p '{mnt}/home/cache' '{mnt}/home/data' && "
        f"(head -c 200000 /dev/zero > '{mnt}/fill' 2>/dev/null; true)"
    )
    r = _in_namespace(mnt, fill, "scan", "--json", "--quarantine", str(infected), size="64k")
    _assert_eicar_reported(r)
    _assert_clean(_in_namespace(mnt, fill, "scan", str(clean), size="64k"))


# -- the same faults through a shim (runs everywhere) ---------------------------------------


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_profile_write_faults_shim(
    tmp_path: Path,
    aegis_paths: AegisPaths,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    code: int,
) -> None:
    infected, clean = _trees(tmp_path)
    profile = str(aegis_paths.data_dir.parent)
    real_connect = sqlite3.connect
    real_open = os.open
    real_mkdir = os.mkdir
    real_mkstemp = __import__("tempfile").mkstemp

    def fault(path: object) -> None:
        if os.fsdecode(path).startswith(profile):  # type: ignore[arg-type]
            raise OSError(code, os.strerror(code), os.fsdecode(path))  # type: ignore[arg-type]

    def connect(path: object, *a: object, **k: object) -> sqlite3.Connection:
        if os.fsdecode(path).startswith(profile):  # type: ignore[arg-type]
            msg = "attempt to write a readonly database" if code == errno.EROFS else "disk full"
            raise sqlite3.OperationalError(msg)
        return real_connect(path, *a, **k)  # type: ignore[arg-type]

    def open_(path: object, flags: int, *a: object, **k: object) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            fault(path)
        return real_open(path, flags, *a, **k)  # type: ignore[arg-type]

    def mkdir(path: object, *a: object, **k: object) -> None:
        fault(path)
        real_mkdir(path, *a, **k)  # type: ignore[arg-type]

    def mkstemp(*a: object, **k: object) -> tuple[int, str]:
        fault(k.get("dir") or "")
        return real_mkstemp(*a, **k)  # type: ignore[no-any-return]

    monkeypatch.setattr(sqlite3, "connect", connect)
    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr("tempfile.mkstemp", mkstemp)
    assert cli_main(["scan", "--json", "--quarantine", str(infected)]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert '"EICAR-Test-File"' in out
    assert cli_main(["scan", str(clean)]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err


# -- the last-resort handler ----------------------------------------------------------------


def test_unexpected_error_is_one_line_exit_2_and_a_crash_report(
    tmp_path: Path,
    aegis_paths: AegisPaths,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from aegis_engine.cli import scan_cmd

    def boom(args: object) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(scan_cmd, "run", boom)
    assert cli_main(["scan", str(tmp_path)]) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1, err
    assert "Traceback" not in err and "ZeroDivisionError: a bug" in err
    reports = crashlog.list_reports(aegis_paths)
    assert len(reports) == 1 and str(reports[0]) in err
    text = reports[0].read_text()
    assert "Traceback" in text and "ZeroDivisionError: a bug" in text and "command: scan" in text
    assert oct(reports[0].stat().st_mode & 0o777) == "0o600"
    assert str(tmp_path) not in text  # the arguments (the user's paths) are not kept


def test_crash_reports_are_capped(aegis_paths: AegisPaths) -> None:
    for _ in range(crashlog.KEEP + 5):
        try:
            raise RuntimeError("x")
        except RuntimeError as exc:
            last = crashlog.write_report(exc, command="scan", paths=aegis_paths)
    reports = crashlog.list_reports(aegis_paths)
    assert len(reports) == crashlog.KEEP
    assert reports[-1] == last


def test_history_write_fault_is_said_once(aegis_paths: AegisPaths) -> None:
    warnings: list[str] = []
    aegis_paths.data_dir.mkdir(parents=True)
    aegis_paths.history_file.mkdir()  # a folder where the database should be
    (aegis_paths.history_file / "x").write_text("x")
    history = History(aegis_paths.history_file, warn=warnings.append)
    for _ in range(3):
        assert history.record_action("quarantine", "/x", outcome="failure") == 0
    assert history.write_error is not None
    assert len(warnings) == 1 and "not recorded" in warnings[0]


def test_monitor_with_unusable_history_and_cache_still_quarantines(
    tmp_path: Path, aegis_paths: AegisPaths
) -> None:
    """An unusable history (a folder in its place) used to abort the monitor before the
    threat was reported or quarantined."""
    import signal

    for db in (aegis_paths.history_file, aegis_paths.scan_cache_file):
        db.mkdir(parents=True)
        (db / "x").write_text("x")
    watched = tmp_path / "Downloads"
    watched.mkdir()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "aegis_engine.cli", "monitor", str(watched), "--json"),
            *("--no-processes", "--no-shield", "--no-canaries"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"},
    )
    with reaped(proc):
        seen = json_lines_until(proc, lambda d: d.get("state") == "started", timeout=120)
        (watched / "eicar.com").write_bytes(EICAR)
        seen += json_lines_until(proc, lambda d: d.get("event") == "detection", timeout=120)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    detections = [d for d in seen if d.get("event") == "detection"]
    assert detections, (seen, err)
    assert detections[0]["verdict"] == "malicious" and detections[0]["action"] == "quarantine"
    assert not (watched / "eicar.com").exists()
    assert "Traceback" not in err, err
    warnings = [str(d.get("message")) for d in seen if d.get("code") == "warning"]
    assert any("history" in w and "not recorded" in w for w in warnings), seen


def test_concurrent_scans_share_one_profile(tmp_path: Path, aegis_paths: AegisPaths) -> None:
    """Three scans at once on one profile (scan cache, history, vault): each reports EICAR,
    none fails on a locked database, and the cache and history stay usable."""
    infected, _ = _trees(tmp_path)
    for n in range(50):
        (infected / f"f{n}.txt").write_text(f"file {n}\n" * n)
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    cmd = [sys.executable, "-m", "aegis_engine.cli", "scan", "--json", str(infected)]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(3)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(cmd, p.returncode, out, err))
    for r in results:
        _assert_eicar_reported(r)
        assert "damaged" not in r.stderr and "cannot be used" not in r.stderr, r.stderr
    r = run_cli("history")
    assert r.returncode == 0 and r.stdout.count("eicar.com") == 3, (r.stdout, r.stderr)


def test_monitor_thread_failures_are_one_line_and_a_crash_report(
    aegis_paths: AegisPaths,
) -> None:
    """In the monitor, a logged failure or an exception ending a thread is one line for the
    user and a crash report, never a traceback on the terminal."""
    import logging
    import threading

    said: list[str] = []
    before = threading.excepthook
    with crashlog.reporting(said.append, command="monitor", paths=aegis_paths):
        try:
            raise KeyError("boom")
        except KeyError:
            logging.getLogger("aegis_engine.monitor.service").exception("handling failed")
        t = threading.Thread(target=lambda: 1 / 0, name="aegis-worker")
        t.start()
        t.join()
    assert len(said) == 2, said
    assert said[0].startswith("handling failed: unexpected KeyError")
    assert said[1].startswith("aegis-worker stopped: unexpected ZeroDivisionError")
    reports = crashlog.list_reports(aegis_paths)
    assert len(reports) == 2
    assert all("Traceback" in r.read_text() for r in reports)
    assert threading.excepthook is before  # put back
