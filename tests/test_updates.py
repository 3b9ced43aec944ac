"""Signed delta updates end to end: a real TUF repository made with aegis-repo, served by a
real HTTPS server on 127.0.0.1 (trustme), the client installing, refusing every attack of
TUF's threat list while the old content keeps scanning, and surviving kills and full disks."""

from __future__ import annotations

import errno
import hashlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata  # type: ignore[attr-defined]

from aegis_engine.engine import Engine
from aegis_engine.net import NetClient, NetConfig
from aegis_engine.paths import AegisPaths
from aegis_engine.privacy.consent import ConsentStore
from aegis_engine.updates import check_for_updates, content_status
from aegis_engine.updates.client import UpdateClient
from aegis_engine.updates.fetcher import NetFetcher
from aegis_engine.updates.store import ContentStore
from tests.conftest import run_cli
from tests.https_server import HTTPSServer, busy_once, drop_halfway_once, https_server, serve_file
from tests.update_support import Repo, add_hash_line, make_repo, serving


@pytest.fixture
def sample(tmp_path: Path) -> tuple[Path, str]:
    """A harmless file only an update knows about."""
    path = tmp_path / "sample.bin"
    path.write_bytes(b"aegis update test sample " + os.urandom(64))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def repo(tmp_path: Path, sample: tuple[Path, str]) -> Repo:
    r = make_repo(tmp_path)
    c1 = r.content("v1")
    add_hash_line(c1, sample[1], sample[0].stat().st_size, "Test.UpdateSample")
    assert r.release(c1) == 1
    return r


@pytest.fixture
def server(tmp_path: Path, repo: Repo, aegis_paths: AegisPaths) -> Iterator[HTTPSServer]:
    with serving(tmp_path, repo, aegis_paths) as srv:
        yield srv


def update(paths: AegisPaths, srv: HTTPSServer, repo: Repo, **kw: object):  # type: ignore[no-untyped-def]
    return check_for_updates(paths, server=srv.url, root_file=repo.root_json, **kw)  # type: ignore[arg-type]


def detects(paths: AegisPaths, path: Path) -> bool:
    engine = Engine(paths)
    try:
        report = engine.scan_file(path)
        return bool(report and report.findings)
    finally:
        engine.close()


def eicar_still_detected(paths: AegisPaths, tmp_path: Path, eicar: bytes) -> bool:
    p = tmp_path / "eicar.com"
    p.write_bytes(eicar)
    return detects(paths, p)


# -- the normal path ------------------------------------------------------------------------


def test_update_installs_and_running_engine_picks_it_up(
    server: HTTPSServer, repo: Repo, aegis_paths: AegisPaths, sample: tuple[Path, str]
) -> None:
    engine = Engine(aegis_paths)  # started before the update: must not need a restart
    try:
        before = engine.scan_file(sample[0])
        assert before is not None and not before.findings
        result = update(aegis_paths, server, repo)
        assert result.result == "updated", result.reason
        assert (result.version, result.previous_version) == (1, 0)
        assert 0 < result.bytes_downloaded < 10_000
        assert any(p.startswith("/targets/deltas/") for p in server.stats.requests)
        assert not any("/blobs/" in p for p in server.stats.requests)  # one delta, no blob
        report = engine.scan_file(sample[0])
        assert report is not None and report.findings[0].name == "Test.UpdateSample"
        assert engine.content_version == 1
    finally:
        engine.close()
    again = update(aegis_paths, server, repo)
    assert again.result == "current" and again.version == 1
    assert again.bytes_downloaded <= 2048
    status = content_status(aegis_paths)
    assert status.content_version == 1 and status.last_result == "current"
    assert status.previous_version == 0 and not status.stale


def test_stored_content_is_sealed(server: HTTPSServer, repo: Repo, aegis_paths: AegisPaths) -> None:
    assert update(aegis_paths, server, repo).result == "updated"
    rule_text = (repo.content("v1") / "rules" / "aegis_script_droppers.yar").read_bytes()
    needle = max(rule_text.split(b'"'), key=len)[:24]  # a long literal of a rule
    assert len(needle) >= 8
    for base in (aegis_paths.data_dir, repo.root / "targets"):
        for p in base.rglob("*"):
            if p.is_file():
                assert needle not in p.read_bytes(), p


def test_rollback_then_update_again(
    server: HTTPSServer, repo: Repo, aegis_paths: AegisPaths, sample: tuple[Path, str]
) -> None:
    assert update(aegis_paths, server, repo).result == "updated"
    proc = run_cli("update", "--rollback", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["result"] == "updated" and out["version"] == 0 and out["previous_version"] == 1
    assert not detects(aegis_paths, sample[0])
    status = json.loads(run_cli("update", "--status", "--json").stdout)
    assert status["content_version"] == 0 and status["last_result"] == "updated"
    assert "rolled back" in status["last_reason"]


def test_update_from_folder_cli(
    repo: Repo, aegis_paths: AegisPaths, sample: tuple[Path, str]
) -> None:
    proc = run_cli("update", "--from", str(repo.root), "--root", str(repo.root_json), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) >= {"version", "previous_version", "bytes_downloaded", "result", "reason"}
    assert out["result"] == "updated" and out["version"] == 1
    assert detects(aegis_paths, sample[0])


def test_second_release_and_key_rotation_accepted(
    server: HTTPSServer, repo: Repo, aegis_paths: AegisPaths
) -> None:
    assert update(aegis_paths, server, repo).result == "updated"
    repo.tuf.rotate("targets")
    repo.tuf.rotate("root")
    c2 = repo.content("v2")
    add_hash_line(c2, "ab" * 32, 1, "Test.Second")
    assert repo.release(c2) == 2
    result = update(aegis_paths, server, repo)
    assert result.result == "updated" and result.version == 2, result.reason


# -- attacks: refused, and the old content keeps scanning -----------------------------------


def _refused(paths: AegisPaths, srv: HTTPSServer, repo: Repo, tmp: Path, eicar: bytes) -> str:
    result = update(paths, srv, repo)
    assert result.result == "refused", result
    assert result.version == 0 and ContentStore(paths).current() is None
    assert eicar_still_detected(paths, tmp, eicar)
    return result.reason


def test_tampered_delta_refused(
    server: HTTPSServer, repo: Repo, aegis_paths: AegisPaths, tmp_path: Path, eicar: bytes
) -> None:
    (delta,) = (repo.root / "targets" / "deltas").iterdir()
    data = bytearray(delta.read_bytes())
    data[-3] ^= 0xFF
    delta.write_bytes(bytes(data))
    assert "signed hash" in _refused(aegis_paths, server, repo, tmp_path, eicar)


def test_tampered_index_refused(
    server: HTTPSServer, repo: Repo, aegis_paths: AegisPaths, tmp_path: Path, eicar: bytes
) -> None:
    (index,) = (repo.root / "targets").glob("*.index.json")
    index.write_bytes(index.read_bytes().replace(b'"version":1', b'"version":9'))
    assert "signed hash" in _refused(aegis_paths, server, repo, tmp_path, eicar)


def test_bad_signature_refused(
    server: HTTPSServer, repo: Repo, aegis_paths: AegisPaths, tmp_path: Path, eicar: bytes
) -> None:
    path = repo.root / "metadata" / "2.targets.json"
    md = json.loads(path.read_bytes())
    md["signed"]["expires"] = "2099-01-01T00:00:00Z"  # changed after signing
    path.write_text(json.dumps(md))
    reason = _refused(aegis_paths, server, repo, tmp_path, eicar)
    assert "signature" in reason.lower() or "Unsigned" in reason


def test_expired_timestamp_refused(
    server: HTTPSServer, repo: Repo, aegis_paths: AegisPaths, tmp_path: Path, eicar: bytes
) -> None:
    repo.expiry_days = {"timestamp": -1}
    repo.tuf.timestamp()
    assert "xpired" in _refused(aegis_paths, server, repo, tmp_path, eicar)


def test_rollback_of_metadata_refused(
    server: HTTPSServer, repo: Repo, aegis_paths: AegisPaths, tmp_path: Path, eicar: bytes
) -> None:
    old_ts = (repo.root / "metadata" / "timestamp.json").read_bytes()
    repo.tuf.timestamp()
    assert update(aegis_paths, server, repo).result == "updated"
    (repo.root / "metadata" / "timestamp.json").write_bytes(old_ts)  # replayed
    result = update(aegis_paths, server, repo)
    assert result.result == "refused" and result.version == 1
    assert "version" in result.reason.lower()


def test_mix_and_match_refused(
    server: HTTPSServer, repo: Repo, aegis_paths: AegisPaths, tmp_path: Path, eicar: bytes
) -> None:
    meta = repo.root / "metadata"
    shutil.copy(meta / "1.targets.json", meta / "2.targets.json")  # snapshot names v2
    _refused(aegis_paths, server, repo, tmp_path, eicar)


def test_root_signed_by_too_few_keys_refused(
    tmp_path: Path, aegis_paths: AegisPaths, eicar: bytes
) -> None:
    repo = make_repo(tmp_path, root_keys=2, root_threshold=2)
    md = Metadata.from_file(str(repo.root / "metadata" / "1.root.json"))
    md.signed.version = 2
    one = repo.tuf.signers("root")[:1]
    repo.tuf.write_root(md, one)  # threshold is 2
    with serving(tmp_path, repo, aegis_paths) as srv:
        result = update(aegis_paths, srv, repo)
    assert result.result == "refused" and "root" in result.reason.lower()
    assert eicar_still_detected(aegis_paths, tmp_path, eicar)


def test_endless_metadata_refused(
    server: HTTPSServer, repo: Repo, aegis_paths: AegisPaths, tmp_path: Path, eicar: bytes
) -> None:
    def endless(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        try:
            for _ in range(1000):
                h.wfile.write(b" " * 65536)
        except OSError:
            pass

    server.routes["/metadata/timestamp.json"] = endless
    _refused(aegis_paths, server, repo, tmp_path, eicar)


def test_test_load_failure_keeps_old_content(
    server: HTTPSServer, repo: Repo, aegis_paths: AegisPaths, tmp_path: Path, eicar: bytes
) -> None:
    c2 = repo.content("broken")
    (c2 / "rules" / "broken.yar").write_text("rule broken { condition: nonsense_here }\n")
    repo.release(c2)
    result = update(aegis_paths, server, repo)
    assert result.result == "failed" and "does not load" in result.reason
    assert ContentStore(aegis_paths).current() is None
    assert eicar_still_detected(aegis_paths, tmp_path, eicar)


# -- transport ------------------------------------------------------------------------------


def test_no_consent_no_socket(server: HTTPSServer, repo: Repo, aegis_paths: AegisPaths) -> None:
    ConsentStore.for_paths(aegis_paths).revoke("update-checks")
    result = update(aegis_paths, server, repo)
    assert result.result == "failed" and "aegis consent grant update-checks" in result.reason
    assert server.stats.connections == 0
    proc = run_cli("update", "--server", server.url, "--root", str(repo.root_json), "--json")
    assert proc.returncode == 2 and json.loads(proc.stdout)["result"] == "failed"
    assert server.stats.connections == 0


def test_429_retry_after_honoured(server: HTTPSServer, repo: Repo, aegis_paths: AegisPaths) -> None:
    timestamp = repo.root / "metadata" / "timestamp.json"
    busy = busy_once("1", lambda h: serve_file(h, timestamp))
    server.routes["/metadata/timestamp.json"] = busy
    started = time.monotonic()
    result = update(aegis_paths, server, repo)
    assert result.result == "updated", result.reason
    assert busy.calls == 2 and time.monotonic() - started >= 1.0


def test_wrong_certificate_and_pin_mismatch_fail(
    tmp_path: Path, repo: Repo, aegis_paths: AegisPaths, eicar: bytes
) -> None:
    with https_server(tmp_path, root=repo.root, hostnames=("other.example",)) as srv:
        aegis_paths.ensure(aegis_paths.config_dir)
        aegis_paths.settings_file.write_text(f'[updates]\nca_file = "{srv.ca_file}"\n')
        result = update(aegis_paths, srv, repo)
        assert result.result == "failed" and "certificate" in result.reason
    with https_server(tmp_path, root=repo.root) as srv:
        aegis_paths.settings_file.write_text(
            f'[updates]\nca_file = "{srv.ca_file}"\npins = ["{"cd" * 32}"]\n'
        )
        result = update(aegis_paths, srv, repo)
        assert result.result == "failed" and "pins" in result.reason
        assert srv.stats.requests == []
    assert eicar_still_detected(aegis_paths, tmp_path, eicar)


def test_stalled_server_times_out(tmp_path: Path, repo: Repo, aegis_paths: AegisPaths) -> None:
    import threading

    release = threading.Event()
    with https_server(tmp_path, root=repo.root) as srv:
        srv.routes["/metadata/timestamp.json"] = lambda h: release.wait(60) and None  # type: ignore[func-returns-value]
        root = repo.root_json.read_bytes()
        net = NetClient(
            NetConfig(ca_file=srv.ca_file, read_timeout=1, retries=0),
            ConsentStore.for_paths(aegis_paths),
        )
        try:
            result = UpdateClient(aegis_paths, NetFetcher(net), base_url=srv.url, root=root).run()
        finally:
            release.set()
            net.close()
    assert result.result == "failed" and "time" in result.reason


def test_interrupted_download_resumed(
    tmp_path: Path, aegis_paths: AegisPaths, sample: tuple[Path, str]
) -> None:
    repo = make_repo(tmp_path)
    c1 = repo.content("v1")
    (c1 / "hashes" / "big.hsb").write_text(
        "".join(
            f"{hashlib.sha256(str(i).encode()).hexdigest()}:*:Test.Big{i}\n" for i in range(20000)
        )
    )
    repo.release(c1)
    with serving(tmp_path, repo, aegis_paths) as srv:
        flaky = drop_halfway_once(repo.root)
        index = json.loads(next((repo.root / "targets").glob("*.index.json")).read_bytes())
        blob = index["files"]["hashes/big.hsb"][0]
        srv.routes[f"/targets/blobs/{blob}"] = flaky
        first = update(aegis_paths, srv, repo)
        assert first.result == "failed", first
        assert (aegis_paths.content_dir / "partial").is_dir()
        second = update(aegis_paths, srv, repo)
        assert second.result == "updated", second.reason
        assert any(r.startswith("bytes=") and r != "bytes=0-" for r in srv.stats.ranges)
        assert 0 < flaky.ranged < (repo.root / "targets" / "blobs" / blob).stat().st_size


def test_full_disk_during_apply(
    server: HTTPSServer,
    repo: Repo,
    aegis_paths: AegisPaths,
    tmp_path: Path,
    eicar: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aegis_engine.updates import store

    def no_space(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "_write_synced", no_space)
    result = update(aegis_paths, server, repo)
    assert result.result == "failed" and "No space" in result.reason
    assert ContentStore(aegis_paths).current() is None
    assert not any((aegis_paths.content_dir / "staging").glob("*"))
    monkeypatch.undo()
    assert eicar_still_detected(aegis_paths, tmp_path, eicar)


KILL_SCRIPT = r"""
import sys, time
from pathlib import Path
from aegis_engine.paths import AegisPaths
from aegis_engine.updates import store
from aegis_engine.updates.client import UpdateClient

real = store._write_synced
def slow(path, data):
    real(path, data)
    print("writing", path, flush=True)
    time.sleep(0.5)
store._write_synced = slow
paths = AegisPaths.default()
UpdateClient.from_dir(paths, Path(sys.argv[1]), Path(sys.argv[2]).read_bytes()).run()
"""


def test_sigkill_during_apply_leaves_one_consistent_version(
    repo: Repo, aegis_paths: AegisPaths, tmp_path: Path, eicar: bytes, sample: tuple[Path, str]
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(repo.root), str(repo.root_json)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("writing") and "/staging/" in line:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(60)
    store = ContentStore(aegis_paths)
    assert store.current() is None  # the switch never happened: the old version is whole
    assert eicar_still_detected(aegis_paths, tmp_path, eicar)
    result = UpdateClient.from_dir(aegis_paths, repo.root, repo.root_json.read_bytes()).run()
    assert result.result == "updated", result.reason
    assert not any((aegis_paths.content_dir / "staging").glob("*"))
    assert detects(aegis_paths, sample[0])


# -- background checks, shipped root --------------------------------------------------------


def test_scheduler_checks_only_with_consent_and_a_server(
    server: HTTPSServer, repo: Repo, aegis_paths: AegisPaths, sample: tuple[Path, str]
) -> None:
    from aegis_engine.updates.scheduler import UpdateScheduler

    results: list[object] = []

    def check(paths: AegisPaths, **kw: object):  # type: ignore[no-untyped-def]
        return check_for_updates(paths, root_file=repo.root_json, **kw)  # type: ignore[arg-type]

    sched = UpdateScheduler(
        aegis_paths, on_result=results.append, first_delay=0.01, interval=3600, check=check
    )
    assert sched.run_once() is None  # no server configured: nothing is asked
    assert 2700 <= sched.next_delay() <= 4500  # jitter around the interval
    aegis_paths.settings_file.write_text(
        f'[updates]\nca_file = "{server.ca_file}"\nserver = "{server.url}"\n'
    )
    ConsentStore.for_paths(aegis_paths).revoke("update-checks")
    assert sched.run_once() is None and server.stats.connections == 0
    ConsentStore.for_paths(aegis_paths).grant("update-checks")
    sched.start()
    try:
        deadline = time.monotonic() + 120
        while not results and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sched.stop()
    assert results and results[0].result == "updated"  # type: ignore[attr-defined]
    assert detects(aegis_paths, sample[0])


def test_shipped_root_is_valid_root_metadata() -> None:
    from aegis_engine.updates.client import shipped_root

    data = shipped_root()
    assert data is not None
    md = Metadata.from_bytes(data)
    assert md.signed.type == "root"
    md.signed.verify_delegate("root", md.signed_bytes, md.signatures)


def test_behaviour_rules_follow_the_content_in_force(repo: Repo, aegis_paths: AegisPaths) -> None:
    from aegis_engine.monitor.behaviour import LiveBehaviourRules

    live = LiveBehaviourRules(aegis_paths)
    before = {r.id for r in live.current.rules}
    c2 = repo.content("v2-behaviour")
    with (c2 / "behaviour_rules.toml").open("a") as fh:
        fh.write(
            '\n[[rule]]\nid = "AEGIS-B999"\ntitle = "Update test"\nseverity = "suspicious"\n'
            'explanation = "{exe}"\n[rule.when]\nname = ["aegis-update-test"]\n'
        )
    repo.release(c2)
    result = UpdateClient.from_dir(aegis_paths, repo.root, repo.root_json.read_bytes()).run()
    assert result.result == "updated", result.reason
    assert {r.id for r in live.current.rules} == before | {"AEGIS-B999"}


def test_installed_update_and_its_repository_never_flag_themselves(
    server: HTTPSServer, repo: Repo, aegis_paths: AegisPaths, sample: tuple[Path, str]
) -> None:
    """Aegis never flags itself: with an update installed (sealed content, its plain view
    for the detectors, the previous version kept) a scan of the whole profile, and of the
    published repository, finds nothing, while the update's own signature works."""
    assert update(aegis_paths, server, repo).result == "updated"
    engine = Engine(aegis_paths)
    try:
        assert detects(aegis_paths, sample[0]), "the installed update is in force"
        own = [
            p
            for p in (
                aegis_paths.config_dir,
                aegis_paths.data_dir,
                aegis_paths.cache_dir,
                aegis_paths.state_dir,
                repo.root,
            )
            if p.exists()
        ]
        summary = engine.scan(own, engine.default_options(use_cache=False))
    finally:
        engine.close()
    flagged = [(r.path, [f.name for f in r.findings]) for r in summary.reports if r.findings]
    assert summary.files > 0
    assert summary.threats == 0 and not flagged, flagged
