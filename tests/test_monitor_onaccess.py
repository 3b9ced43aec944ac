"""On-access scanning through the real Monitor: inotify, settling, the engine, the decision
engine and the quarantine. Bad input: event storms, deleted roots, permission-denied
folders, symlink loops, the inotify watch limit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import EICAR
from helpers.monitor_support import (
    Events,
    needs_root_and_nobody,
    no_thread_leaks,
    other_user_env,
    shared_tmp,
)

from aegis_engine import Engine
from aegis_engine.monitor import DetectionEvent, Monitor, MonitorOptions, report_only
from aegis_engine.paths import AegisPaths

__all__ = ["no_thread_leaks", "shared_tmp"]  # fixtures used by name
pytestmark = pytest.mark.usefixtures("no_thread_leaks")


def _monitor(engine: Engine, *watch: Path, **kw: object) -> Monitor:
    kw.setdefault("processes", False)
    return Monitor(engine, list(watch), **kw)  # type: ignore[arg-type]


def _detected(events: Events, path: Path, timeout: float = 20.0) -> DetectionEvent | None:
    e = events.wait_for(lambda e: isinstance(e, DetectionEvent) and e.path == str(path), timeout)
    assert e is None or isinstance(e, DetectionEvent)
    return e


def test_eicar_written_is_detected_and_quarantined(engine: Engine, tmp_path: Path) -> None:
    watched = tmp_path / "Downloads"
    watched.mkdir()
    events = Events()
    with _monitor(engine, watched) as mon:
        mon.subscribe(events)
        target = watched / "eicar.com"
        target.write_bytes(EICAR)
        det = _detected(events, target)
    assert det is not None, events.dicts()
    d = det.to_dict()
    assert d["verdict"] == "malicious" and d["action"] == "quarantine"
    assert "EICAR-Test-File" in d["detections"] and d["quarantine_id"]
    assert not target.exists(), "the file should be in the quarantine now"
    assert [i.original_path for i in engine.quarantine.items()] == [str(target)]
    kinds = [e["event"] for e in events.dicts()]
    assert kinds[-1] == "status"  # stopped


def test_report_only_handler_and_files_arriving_in_every_way(
    engine: Engine, tmp_path: Path
) -> None:
    watched = tmp_path / "w"
    (watched / "deep").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    events = Events()
    with _monitor(engine, watched, handle=report_only, shield=False) as mon:
        mon.subscribe(events)
        (outside / "in.com").write_bytes(EICAR)
        os.rename(outside / "in.com", watched / "moved-in.com")  # renamed into place
        (watched / "deep" / "new").mkdir()  # a folder created after the start
        (watched / "deep" / "new" / "x.com").write_bytes(EICAR)
        with open(watched / "slow.com", "wb") as fh:  # written in pieces, then closed
            fh.write(EICAR[:20])
            fh.flush()
            time.sleep(0.2)
            fh.write(EICAR[20:])
        for p in ("moved-in.com", "deep/new/x.com", "slow.com"):
            det = _detected(events, watched / p)
            assert det is not None, (p, events.dicts())
            assert det.action == "report"
    assert (watched / "slow.com").exists()  # report only


def test_rapid_rewrites_are_coalesced_into_few_scans(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    watched = tmp_path / "w"
    watched.mkdir()
    scanned: list[str] = []
    real_scan = engine.scan_file

    def counting(path: str | Path) -> object:
        scanned.append(str(path))
        return real_scan(path)

    monkeypatch.setattr(engine, "scan_file", counting)
    events = Events()
    opts = MonitorOptions(quiet_delay=0.5)
    with _monitor(engine, watched, shield=False, handle=report_only, options=opts) as mon:
        mon.subscribe(events)
        with open(watched / "log.txt", "wb") as fh:  # 200 writes, one open file
            for i in range(200):
                fh.write(b"line %d\n" % i)
                fh.flush()
        (watched / "last.com").write_bytes(EICAR)
        assert _detected(events, watched / "last.com") is not None
    assert scanned.count(str(watched / "log.txt")) <= 2, scanned


def test_aegis_folders_exclusions_and_canaries_are_not_scanned(
    aegis_home: Path, tmp_path: Path
) -> None:
    watched = tmp_path / "w"
    watched.mkdir()
    paths = AegisPaths.under(watched / "aegis-home")  # Aegis's own data inside a watched folder
    eng = Engine(paths)
    try:
        events = Events()
        opts = MonitorOptions(exclude=("*.skipme",))
        with Monitor(eng, [watched], processes=False, handle=report_only, options=opts) as mon:
            mon.subscribe(events)
            paths.ensure(paths.data_dir)
            (paths.data_dir / "sample.com").write_bytes(EICAR)
            (watched / "x.skipme").write_bytes(EICAR)
            (watched / "real.com").write_bytes(EICAR)
            assert _detected(events, watched / "real.com") is not None
            time.sleep(1.5)
        paths_seen = {e["path"] for e in events.dicts("detection")}
        assert paths_seen == {str(watched / "real.com")}
    finally:
        eng.close()


def test_watched_folder_deleted_and_recreated(engine: Engine, tmp_path: Path) -> None:
    watched = tmp_path / "Desktop"
    (watched / "sub").mkdir(parents=True)
    events = Events()
    opts = MonitorOptions(root_check_interval=0.2)
    with _monitor(engine, watched, handle=report_only, options=opts) as mon:
        mon.subscribe(events)
        shutil.rmtree(watched)
        assert events.wait_for(lambda e: e.to_dict().get("code") == "watch-lost") is not None
        (watched / "again").mkdir(parents=True)
        assert (
            events.wait_for(lambda e: e.to_dict().get("state") == "watch-restored") is not None
        ), events.dicts()
        (watched / "again" / "e.com").write_bytes(EICAR)
        assert _detected(events, watched / "again" / "e.com") is not None
    assert not events.of("ransomware")  # rm -rf of a protected folder is not ransomware


def test_symlink_loops_are_not_followed(engine: Engine, tmp_path: Path) -> None:
    watched = tmp_path / "w"
    (watched / "a" / "b").mkdir(parents=True)
    os.symlink(watched, watched / "a" / "b" / "loop")
    os.symlink("self", watched / "self")  # a link to itself
    os.symlink(tmp_path, watched / "up")
    events = Events()
    with _monitor(engine, watched, handle=report_only) as mon:
        mon.subscribe(events)
        assert mon.watch_results[0].watched == 3  # w, a, b: links are not followed
        (watched / "a" / "b" / "e.com").write_bytes(EICAR)
        assert _detected(events, watched / "a" / "b" / "e.com") is not None


def test_permission_denied_subfolders_are_reported_not_fatal(shared_tmp: Path) -> None:
    """As uid 65534 (root reads everything): a folder it may not read is reported, the rest
    is protected."""
    py = needs_root_and_nobody()
    home = shared_tmp / "home"
    watched = shared_tmp / "watch"
    for d in (home, watched):
        d.mkdir(mode=0o777)
        d.chmod(0o777)
    secret = watched / "secret"
    secret.mkdir(mode=0o700)  # root's, unreadable for uid 65534
    proc = subprocess.Popen(
        [
            py,
            "-m",
            "aegis_engine.cli",
            "monitor",
            str(watched),
            "--json",
            "--no-processes",
            "--report-only",
        ],
        user=65534,
        cwd=shared_tmp,
        env=other_user_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = _read_until(proc, lambda d: d.get("state") == "started")
        denied = [d for d in lines if d.get("code") == "permission-denied"]
        assert [d["path"] for d in denied] == [str(secret)]
        (watched / "e.com").write_bytes(EICAR)
        more = _read_until(proc, lambda d: d.get("event") == "detection")
        assert more[-1]["path"] == str(watched / "e.com")
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert json.loads(out.splitlines()[-1])["state"] == "stopped"


def _read_until(proc: subprocess.Popen[str], pred: object, timeout: float = 30.0) -> list[dict]:
    assert proc.stdout is not None
    lines: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        d = json.loads(line)
        lines.append(d)
        if pred(d):  # type: ignore[operator]
            return lines
    raise AssertionError(
        f"not seen in time; got {lines}; stderr: {proc.stderr and proc.stderr.read()}"
    )


def test_event_storm_costs_bounded_memory_and_degrades_to_rescan(
    engine: Engine, tmp_path: Path
) -> None:
    """100,000 files created as fast as another process can: the pending table never grows
    past its bound, the overflow is reported, nothing crashes, and stop() does not wait for
    the backlog."""
    watched = tmp_path / "w"
    watched.mkdir()
    events = Events()
    opts = MonitorOptions(max_pending=2000, max_rescan_folders=64)
    me = psutil.Process()
    with _monitor(engine, watched, handle=report_only, shield=False, options=opts) as mon:
        mon.subscribe(events)
        rss0 = me.memory_info().rss
        maker = (
            "import os, sys\n"
            "root = sys.argv[1]\n"
            "for d in range(100):\n"
            "    sub = os.path.join(root, 'd%03d' % d)\n"
            "    os.mkdir(sub)\n"
            "    for i in range(1000):\n"
            "        with open(os.path.join(sub, 'f%d.txt' % i), 'wb') as fh:\n"
            "            fh.write(b'x')\n"
        )
        # Another process creates them, as an archiver would.
        subprocess.run([sys.executable, "-c", maker, str(watched)], check=True, timeout=300)
        rss1 = me.memory_info().rss
        assert events.wait_for(lambda e: e.to_dict().get("code") == "overflow") is not None
        assert mon.on_access is not None
        assert mon.on_access.stats.max_pending_seen <= 2000
        assert mon.on_access.rescan_backlog <= 64 + 1
        t = time.monotonic()
    assert time.monotonic() - t < 15, "stop() must not wait for the backlog"
    stats = mon.stats()["on_access"]
    assert stats["deferred"] > 0 or stats["overflows"] > 0
    # Bounded tables (2,000 pending paths, 64 folders) and event batches: a generous bound.
    assert rss1 - rss0 < 40 * 1024 * 1024, (rss0, rss1)


def test_overflowed_files_are_still_scanned_later(engine: Engine, tmp_path: Path) -> None:
    watched = tmp_path / "w"
    watched.mkdir()
    events = Events()
    opts = MonitorOptions(max_pending=20, max_rescan_folders=4)
    with _monitor(engine, watched, handle=report_only, shield=False, options=opts) as mon:
        mon.subscribe(events)
        planted = []
        for d in range(10):
            sub = watched / f"d{d}"
            sub.mkdir()
            for i in range(100):
                (sub / f"f{i}.txt").write_bytes(b"clean")
            (sub / "e.com").write_bytes(EICAR)
            planted.append(str(sub / "e.com"))
        done = events.wait_for(lambda e: e.to_dict().get("state") == "rescan-done", 120)
        assert done is not None, mon.stats()
        # an overflow can come in more than one wave (each with its own rescan) on a loaded
        # machine: wait for the behaviour, every planted file found, not for the first wave
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if {e["path"] for e in events.dicts("detection")} >= set(planted):
                break
            time.sleep(0.2)
    found = {e["path"] for e in events.dicts("detection")}
    assert found == set(planted)
    assert events.dicts("error")[0]["code"] == "overflow"


def test_inotify_watch_limit_is_reported_with_a_fallback(tmp_path: Path) -> None:
    """In a user namespace whose watch limit is 8 (the host's limit is untouched): the
    monitor says so, polls the folder instead, and still finds a file in a deep folder."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare not available")
    probe = subprocess.run(
        ["unshare", "-Ur", "sh", "-c", "echo 8 > /proc/sys/user/max_inotify_watches"],
        capture_output=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot lower the inotify limit in a user namespace: {probe.stderr!r}")
    watched = tmp_path / "w"
    deep = watched
    for i in range(20):
        deep = deep / f"level{i}"
    deep.mkdir(parents=True)
    script = f"""
import json, sys, time
from pathlib import Path
from aegis_engine import Engine
from aegis_engine.monitor import Monitor, MonitorOptions, report_only
eng = Engine()
mon = Monitor(eng, [{str(watched)!r}], processes=False, handle=report_only,
              options=MonitorOptions(polling_interval=0.5))
mon.subscribe(lambda e: print(json.dumps(e.to_dict()), flush=True))
mon.start()
time.sleep(1.0)
Path({str(deep / "e.com")!r}).write_bytes({EICAR!r})
time.sleep(4.0)
mon.stop(); eng.close()
"""
    out = subprocess.run(
        [
            "unshare",
            "-Ur",
            "sh",
            "-c",
            'echo 8 > /proc/sys/user/max_inotify_watches && exec "$0" -c "$1"',
            sys.executable,
            script,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AEGIS_HOME": str(tmp_path / "home")},
    )
    lines = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    limit = [d for d in lines if d.get("code") == "inotify-limit"]
    assert limit, (out.stdout, out.stderr)
    assert "max_user_watches" in limit[0]["message"] and "sysctl" in limit[0]["message"]
    assert any(d.get("state") == "fallback" for d in lines)
    assert any(d.get("event") == "detection" and d["path"] == str(deep / "e.com") for d in lines), (
        out.stdout
    )
