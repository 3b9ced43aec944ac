"""k-anonymous cloud look-ups against a real HTTPS server on 127.0.0.1 (trustme certificates):
only the 5-character prefix leaves, answers are padded to one length, no consent means no
socket, a pin mismatch or a server that is down means exit 2, and scans use the answers."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import EICAR, cli_logging_connections, run_cli

from aegis_engine.decision import DecisionEngine
from aegis_engine.paths import AegisPaths
from aegis_engine.privacy import ConsentStore
from aegis_engine.privacy.lookup import RangeLookup
from aegis_engine.privacy.ranges import Reputation
from aegis_engine.privacy.reputation import finding_for
from aegis_engine.privacy.wire import transport_for
from aegis_engine.repo.cli import main as repo_main
from aegis_engine.results import Finding, FindingKind, ObjectResult, Severity, Verdict
from tests.https_server import HTTPSServer, https_server, send_bytes

PROGRAM = b"MZ" + b"\0" * 58 + b"aegis test program, not malware " + b"\x90" * 200
GOOD_PROGRAM = b"MZ" + b"\0" * 58 + b"aegis known good program " + b"\x90" * 100


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def service(tmp_path: Path, aegis_paths: AegisPaths) -> Iterator[HTTPSServer]:
    """Range files for PROGRAM (known-bad) and GOOD_PROGRAM (known-good), served like
    ``try_files $uri /range/empty`` from a static folder; settings point at it."""
    out = tmp_path / "ranges"
    noise = [(hashlib.sha256(secrets.token_bytes(8)).hexdigest(), "Noise") for _ in range(50)]
    bad_list = tmp_path / "bad.hsb"
    bad_list.write_text(
        "".join(f"{h}:100:{n}\n" for h, n in [(_sha(PROGRAM), "Test.Program"), *noise])
        + f"{'0' * 32}:68:Md5.Only\n"
    )
    good_list = tmp_path / "good.hsb"
    good_list.write_text(f"{_sha(GOOD_PROGRAM)}:{len(GOOD_PROGRAM)}:Good\n")
    assert (
        repo_main(["ranges", str(out), "--hashes", str(bad_list), "--known-good", str(good_list)])
        == 0
    )
    assert json.loads((out / "ranges.json").read_text())["known_bad"] == 51
    with https_server(tmp_path) as srv:

        def ranges(h: http.server.BaseHTTPRequestHandler) -> None:
            name = h.path.rsplit("/", 1)[-1]
            path = out / "range" / name
            send_bytes(h, (path if path.is_file() else out / "range" / "empty").read_bytes())

        for p in [_sha(PROGRAM), _sha(GOOD_PROGRAM), _sha(EICAR), _sha(b"unknown")]:
            srv.routes[f"/r/range/{p[:5]}"] = ranges
        aegis_paths.ensure(aegis_paths.config_dir)
        aegis_paths.settings_file.write_text(
            f'[cloud]\nlookup_url = "{srv.url}/r"\n\n[updates]\nca_file = "{srv.ca_file}"\n'
        )
        yield srv


def _grant(paths: AegisPaths) -> ConsentStore:
    store = ConsentStore.for_paths(paths)
    store.grant("cloud-lookup")
    return store


def test_only_the_prefix_leaves_and_answers_are_padded(
    service: HTTPSServer, aegis_paths: AegisPaths
) -> None:
    store = _grant(aegis_paths)
    sizes: list[int] = []

    def transport() -> object:
        inner = transport_for(aegis_paths, store)

        class Measuring:
            def send(self, *a: object, **kw: object) -> object:
                reply = inner.send(*a, **kw)  # type: ignore[arg-type]
                sizes.append(len(reply.body))
                return reply

        return Measuring()

    lookup = RangeLookup.for_paths(aegis_paths, store, transport)  # type: ignore[arg-type]
    assert lookup.lookup(_sha(PROGRAM)).reputation is Reputation.KNOWN_BAD
    assert lookup.lookup(_sha(GOOD_PROGRAM)).reputation is Reputation.KNOWN_GOOD
    assert lookup.lookup(_sha(b"unknown")).reputation is Reputation.UNKNOWN
    again = lookup.lookup(_sha(PROGRAM))
    assert again.cached and again.reputation is Reputation.KNOWN_BAD
    assert len(sizes) == 3, "the repeat was answered from the cache"
    assert len(set(sizes)) == 1 and sizes[0] > 0, f"answers differ in length: {sizes}"
    requests = service.stats.requests
    assert requests == [f"/r/range/{_sha(d)[:5]}" for d in (PROGRAM, GOOD_PROGRAM, b"unknown")]
    for d in (PROGRAM, GOOD_PROGRAM, b"unknown"):
        assert _sha(d)[5:] not in "".join(requests)
    assert service.stats.bodies == [b"", b"", b""]


def test_cli_lookup_exit_codes_and_json(
    service: HTTPSServer, aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    bad, good, other = tmp_path / "bad.exe", tmp_path / "good.exe", tmp_path / "other.txt"
    bad.write_bytes(PROGRAM)
    good.write_bytes(GOOD_PROGRAM)
    other.write_bytes(b"unknown")
    refused = run_cli("lookup", str(bad))
    assert refused.returncode == 2
    assert "aegis consent grant cloud-lookup" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert service.stats.connections == 0, "no consent: not even a connection"
    _grant(aegis_paths)
    r = run_cli("lookup", "--json", str(bad), str(good), str(other))
    assert r.returncode == 1, r.stdout + r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["reputation"] for row in rows] == ["known-bad", "known-good", "unknown"]
    assert rows[0]["name"] == "Test.Program"
    clean = run_cli("lookup", str(good), str(other))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "known-good" in clean.stdout
    sent = run_cli("privacy", "sent", "--json")
    logged = json.loads(sent.stdout)
    assert {e["purpose"] for e in logged} == {"cloud-lookup"}
    assert all(len(e["payload"]["prefix"]) == 5 for e in logged)


def test_pin_mismatch_and_server_down_are_exit_2(
    service: HTTPSServer, aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    _grant(aegis_paths)
    target = tmp_path / "bad.exe"
    target.write_bytes(PROGRAM)
    settings = aegis_paths.settings_file.read_text()
    aegis_paths.settings_file.write_text(settings + f'pins = ["{"ab" * 32}"]\n')
    r = run_cli("lookup", str(target))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "not looked up" in r.stdout and "Traceback" not in r.stderr
    assert service.stats.requests == [], "pin mismatch: refused before any request"
    # Server down: a port where nothing listens.
    down = settings.replace(service.url, "https://127.0.0.1:9")
    aegis_paths.settings_file.write_text(down)
    ConsentStore.for_paths(aegis_paths).grant("cloud-lookup")  # the endpoint changed: re-ask
    r = run_cli("lookup", str(target))
    assert r.returncode == 2 and "not looked up" in r.stdout


def test_a_changed_endpoint_refuses_until_granted_again(
    service: HTTPSServer, aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    _grant(aegis_paths)
    target = tmp_path / "x.exe"
    target.write_bytes(PROGRAM)
    text = aegis_paths.settings_file.read_text().replace('/r"', '/other"')
    aegis_paths.settings_file.write_text(text)
    r = run_cli("lookup", str(target))
    assert r.returncode == 2 and "another endpoint" in r.stderr
    assert service.stats.connections == 0


def test_scan_with_lookups_finds_a_known_bad_program(
    service: HTTPSServer, aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    folder = tmp_path / "scan"
    folder.mkdir()
    (folder / "tool.exe").write_bytes(PROGRAM)
    (folder / "notes.txt").write_text("hello")
    r = run_cli("scan", "--json", str(folder))
    assert r.returncode == 0, "without consent the program is not looked up: clean"
    assert service.stats.connections == 0
    _grant(aegis_paths)
    r = run_cli("scan", "--json", str(folder))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Cloud.KnownBad.Test.Program" in r.stdout
    assert service.stats.requests == [f"/r/range/{_sha(PROGRAM)[:5]}"], "text files not sent"


def test_known_good_clears_an_ml_only_finding_and_says_so() -> None:
    ml = Finding("ml", "ML.PE.Suspicious", Severity.SUSPICIOUS, 0.8, FindingKind.ML)
    from aegis_engine.privacy.lookup import LookupResult

    good = finding_for(LookupResult("ab" * 32, Reputation.KNOWN_GOOD))
    engine = DecisionEngine()
    alone = engine.decide(ObjectResult("/x.exe", Verdict.SUSPICIOUS, [ml]), file_path="/x.exe")
    assert alone.verdict is Verdict.SUSPICIOUS
    cleared = engine.decide(
        ObjectResult("/x.exe", Verdict.SUSPICIOUS, [ml, good]), file_path="/x.exe"
    )
    assert cleared.verdict is Verdict.CLEAN
    assert any("known" in line and "good" in line for line in cleared.explanation)
    heuristic = Finding("yara", "Heur.X", Severity.SUSPICIOUS, 1.0, FindingKind.HEURISTIC)
    kept = engine.decide(
        ObjectResult("/x.exe", Verdict.SUSPICIOUS, [ml, heuristic, good]), file_path="/x.exe"
    )
    assert kept.verdict is not Verdict.CLEAN, "known-good clears ML-only findings, no more"
    bad = finding_for(LookupResult("ab" * 32, Reputation.KNOWN_BAD, "X"))
    hit = engine.decide(ObjectResult("/x.exe", Verdict.MALICIOUS, [bad]), file_path="/x.exe")
    assert hit.verdict is Verdict.MALICIOUS and hit.basis.value == "signature"


def test_default_settings_open_no_connection(tmp_path: Path) -> None:
    """A scan with default settings makes no connection at all (audit hook on connect)."""
    folder = tmp_path / "scan"
    folder.mkdir()
    (folder / "eicar.com").write_bytes(EICAR)
    (folder / "tool.exe").write_bytes(PROGRAM)
    log = tmp_path / "connects.log"
    import subprocess

    r = subprocess.run(
        [*cli_logging_connections(log), "scan", str(folder)],
        capture_output=True,
        text=True,
        timeout=180,
        env=os.environ.copy(),
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert not log.exists(), log.read_text()


def test_aegis_repo_ranges_contract(tmp_path: Path) -> None:
    import subprocess
    import sys

    lst = tmp_path / "main.hsb"
    lst.write_text("".join(f"{_sha(bytes([i]))}:1:Bad.{i}\n" for i in range(40)))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "aegis_engine.repo.cli",
            "ranges",
            str(tmp_path / "out"),
            "--hashes",
            str(lst),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    files = list((tmp_path / "out" / "range").iterdir())
    assert len(files) == summary["prefixes"] + 1  # and range/empty
    assert {f.stat().st_size for f in files} == {summary["file_size"]}
    missing = run_cli_repo(tmp_path / "nowhere.hsb", tmp_path / "out2")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def run_cli_repo(hashes: Path, out: Path) -> object:
    import subprocess
    import sys

    return subprocess.run(
        [
            sys.executable,
            "-m",
            "aegis_engine.repo.cli",
            "ranges",
            str(out),
            "--hashes",
            str(hashes),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
