"""Usage statistics, crash reports and samples against real HTTPS servers on 127.0.0.1:
an OTLP collector stand-in receives valid OTLP/HTTP JSON logs; 429, a server that is down
and a pin mismatch lose nothing from the outbox; samples go only when confirmed."""

from __future__ import annotations

import gzip
import http.server
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    EICAR,
    cli_logging_connections,
    python_logging_connections,
    reaped,
    run_cli,
)

from aegis_engine import crashlog
from aegis_engine.errors import ConsentRequired, PrivacyError, SendFailed
from aegis_engine.paths import AegisPaths
from aegis_engine.privacy import ConsentStore
from aegis_engine.privacy.crash import handle_crash
from aegis_engine.privacy.endpoints import CloudSettings
from aegis_engine.privacy.outbox import Outbox
from aegis_engine.privacy.redact import Redactor
from aegis_engine.privacy.samples import offer_sample, submit_sample
from aegis_engine.privacy.sender import OutboxSender
from aegis_engine.privacy.sentlog import SentLog
from aegis_engine.privacy.usage import count, queue_due_report
from aegis_engine.privacy.wire import transport_for
from tests.https_server import HTTPSServer, https_server, send_bytes

_NANOS = re.compile(r"^\d+$")
_VALUE_KEYS = {"stringValue", "intValue", "doubleValue", "boolValue", "arrayValue", "kvlistValue"}


def check_any_value(v: Any) -> None:
    assert isinstance(v, dict) and len(v) == 1 and set(v) <= _VALUE_KEYS, v
    if "intValue" in v:
        assert isinstance(v["intValue"], str) and re.match(r"^-?\d+$", v["intValue"])
    if "arrayValue" in v:
        for item in v["arrayValue"]["values"]:
            check_any_value(item)
    if "kvlistValue" in v:
        check_attributes(v["kvlistValue"]["values"])


def check_attributes(attrs: Any) -> None:
    assert isinstance(attrs, list)
    for a in attrs:
        assert set(a) == {"key", "value"} and isinstance(a["key"], str)
        check_any_value(a["value"])


def check_otlp_logs(doc: Any) -> list[dict[str, Any]]:
    """Validate an ExportLogsServiceRequest in OTLP/JSON; return its log records."""
    records: list[dict[str, Any]] = []
    assert set(doc) == {"resourceLogs"}
    for rl in doc["resourceLogs"]:
        check_attributes(rl["resource"]["attributes"])
        for sl in rl["scopeLogs"]:
            assert isinstance(sl["scope"]["name"], str)
            for rec in sl["logRecords"]:
                assert _NANOS.match(rec["timeUnixNano"])
                assert 1 <= rec["severityNumber"] <= 24
                check_any_value(rec["body"])
                check_attributes(rec["attributes"])
                records.append(rec)
    return records


@pytest.fixture
def collector(tmp_path: Path, aegis_paths: AegisPaths) -> Iterator[HTTPSServer]:
    with https_server(tmp_path) as srv:
        srv.routes["/otel/v1/logs"] = lambda h: send_bytes(h, b"{}")
        aegis_paths.ensure(aegis_paths.config_dir)
        aegis_paths.settings_file.write_text(
            "[cloud]\n"
            f'usage_stats_url = "{srv.url}/otel"\n'
            f'crash_reports_url = "{srv.url}/otel"\n'
            f'sample_submission_url = "{srv.url}/samples"\n'
            f'\n[updates]\nca_file = "{srv.ca_file}"\n'
        )
        yield srv


def _boom(where: str) -> None:
    raise OSError(f"cannot open {where}/Secrets/plan.txt for kowalski@example.org")


def _crash(paths: AegisPaths) -> None:
    try:
        _boom(str(Path.home()))
    except OSError as exc:
        handle_crash(paths, exc, "cli")


def _sender(paths: AegisPaths, store: ConsentStore) -> OutboxSender:
    return OutboxSender.for_paths(paths, store, lambda: transport_for(paths, store), min_interval=0)


def test_crash_is_local_always_and_queued_only_with_consent(aegis_paths: AegisPaths) -> None:
    _crash(aegis_paths)
    local = crashlog.list_reports(aegis_paths)
    assert len(local) == 1 and "plan.txt" in local[0].read_text(), "the full crash, locally"
    assert Outbox.for_paths(aegis_paths).pending() == [], "crash reports are off"
    ConsentStore.for_paths(aegis_paths).grant("crash-reports")
    _crash(aegis_paths)
    queued = Outbox.for_paths(aegis_paths).pending()
    assert [r.purpose for r in queued] == ["crash-reports"]
    text = json.dumps(queued[0].record)
    assert queued[0].record["error_type"] == "OSError"
    assert "plan" not in text and "kowalski" not in text and str(Path.home()) not in text
    assert any("in _boom" in f for f in queued[0].record["traceback"]) is False, (
        "frames outside the aegis packages (this test) are not named"
    )


def test_collector_receives_valid_otlp_json(
    collector: HTTPSServer, aegis_paths: AegisPaths
) -> None:
    store = ConsentStore.for_paths(aegis_paths)
    store.grant("crash-reports")
    store.grant("usage-stats")
    _crash(aegis_paths)
    count(aegis_paths, store, scans=2, files_scanned=40, detections=1)
    assert queue_due_report(aegis_paths, store, now=10**10) is not None
    sender = _sender(aegis_paths, store)
    assert sender.flush("crash-reports").sent == 1
    assert sender.flush("usage-stats").sent == 1
    assert collector.stats.requests == ["/otel/v1/logs", "/otel/v1/logs"]
    docs = [json.loads(gzip.decompress(body)) for body in collector.stats.bodies]
    crash_rec = check_otlp_logs(docs[0])[0]
    usage_rec = check_otlp_logs(docs[1])[0]
    attrs = {a["key"]: a["value"] for a in crash_rec["attributes"]}
    assert attrs["event.name"] == {"stringValue": "aegis.crash"}
    assert attrs["aegis.error_type"] == {"stringValue": "OSError"}
    usage = {a["key"]: a["value"] for a in usage_rec["attributes"]}
    counts = {c["key"]: c["value"] for c in usage["aegis.counts"]["kvlistValue"]["values"]}
    assert counts["files_scanned"] == {"intValue": "40"}
    resource = {a["key"] for a in docs[0]["resourceLogs"][0]["resource"]["attributes"]}
    assert resource == {"service.name", "service.version"}, "no instance or host id"
    assert int(crash_rec["timeUnixNano"]) % (3600 * 10**9) == 0, "coarse (hour) time"
    assert Outbox.for_paths(aegis_paths).pending() == []
    log = SentLog.for_paths(aegis_paths).entries()
    assert [e.purpose for e in log] == ["crash-reports", "usage-stats"]
    assert log[0].payload == docs[0], "the sent log holds the payload as sent"
    shown = run_cli("privacy", "sent", "--json")
    assert json.loads(shown.stdout)[0]["endpoint"].endswith("/otel/v1/logs")


def test_preview_shows_the_exact_body_that_is_sent(
    collector: HTTPSServer, aegis_paths: AegisPaths
) -> None:
    store = ConsentStore.for_paths(aegis_paths)
    store.grant("crash-reports")
    _crash(aegis_paths)
    r = run_cli("privacy", "preview", "--json")
    assert r.returncode == 0, r.stderr
    views = {v["id"]: v for v in json.loads(r.stdout)["purposes"]}
    nxt = views["crash-reports"]["next"]
    assert len(nxt) == 1 and nxt[0]["url"] == f"{collector.url}/otel/v1/logs"
    assert views["usage-stats"]["allowed"] is False and views["usage-stats"]["next"] == []
    sent = run_cli("privacy", "send", "crash-reports")
    assert sent.returncode == 0, sent.stderr
    assert gzip.decompress(collector.stats.bodies[0]).decode() == nxt[0]["body"]


@pytest.mark.parametrize("trouble", ["429", "500", "down", "pin"])
def test_trouble_loses_nothing_from_the_outbox(
    collector: HTTPSServer, aegis_paths: AegisPaths, trouble: str
) -> None:
    store = ConsentStore.for_paths(aegis_paths)
    store.grant("crash-reports")
    _crash(aegis_paths)
    _crash(aegis_paths)
    before = Outbox.for_paths(aegis_paths).pending()
    settings = aegis_paths.settings_file.read_text()
    if trouble in ("429", "500"):
        status = int(trouble)

        def busy(h: http.server.BaseHTTPRequestHandler) -> None:
            h.send_response(status)
            h.send_header("Retry-After", "1")
            h.send_header("Content-Length", "0")
            h.end_headers()

        collector.routes["/otel/v1/logs"] = busy
    elif trouble == "down":
        aegis_paths.settings_file.write_text(settings.replace(collector.url, "https://127.0.0.1:9"))
        store.grant("crash-reports")  # for the new endpoint
    else:
        aegis_paths.settings_file.write_text(settings + f'pins = ["{"cd" * 32}"]\n')
    with pytest.raises(SendFailed):
        _sender(aegis_paths, store).flush("crash-reports")
    assert Outbox.for_paths(aegis_paths).pending() == before
    assert SentLog.for_paths(aegis_paths).entries() == []
    if trouble == "pin":
        assert collector.stats.requests == [] and collector.stats.bodies == []
    r = run_cli("privacy", "send", "crash-reports")
    assert r.returncode == 2 and "not sent" in r.stderr and "Traceback" not in r.stderr


def test_nothing_is_sent_without_consent(collector: HTTPSServer, aegis_paths: AegisPaths) -> None:
    store = ConsentStore.for_paths(aegis_paths)
    store.grant("crash-reports")
    _crash(aegis_paths)
    store.revoke("crash-reports")
    assert Outbox.for_paths(aegis_paths).pending() == [], "revoking empties the outbox"
    with pytest.raises(ConsentRequired):
        _sender(aegis_paths, store).flush("crash-reports")
    assert collector.stats.connections == 0


def test_samples_only_when_confirmed(
    collector: HTTPSServer, aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    target = tmp_path / "kowalski-invoice.com"
    target.write_bytes(EICAR)
    store = ConsentStore.for_paths(aegis_paths)
    refused = run_cli("privacy", "submit", "--yes", str(target))
    assert refused.returncode == 2 and "consent grant sample-submission" in refused.stderr
    store.grant("sample-submission")
    unconfirmed = run_cli("privacy", "submit", str(target))
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
    assert "EICAR" in unconfirmed.stderr, "the user sees the detections before confirming"
    assert collector.stats.connections == 0
    collector.routes["/samples"] = lambda h: send_bytes(h, b"", 202)
    r = run_cli("privacy", "submit", "--yes", "--json", str(target))
    assert r.returncode == 0, r.stdout + r.stderr
    body = collector.stats.bodies[0]
    assert EICAR in body and b"kowalski" not in body and b"invoice" not in body
    assert b'filename="sample.bin"' in body
    with pytest.raises(PrivacyError):
        submit_sample(
            offer_sample(target, ["X"]),
            confirmed=False,
            consent=store,
            cloud=CloudSettings.for_paths(aegis_paths),
            transport=lambda: transport_for(aegis_paths, store),
            sent_log=SentLog.for_paths(aegis_paths),
            redactor=Redactor(),
        )
    assert len(collector.stats.bodies) == 1


def test_cli_internal_error_is_local_and_queued_only_with_consent(aegis_home: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from aegis_engine.cli import main\n"
        "import aegis_engine.cli.consent_cmd as c\n"
        "def broken(args): raise RuntimeError('/home/someone/secret')\n"
        "c.run_list = broken\n"
        "sys.exit(main(['consent', 'list']))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "unexpected RuntimeError" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    paths = AegisPaths.under(aegis_home)
    assert crashlog.list_reports(paths)
    assert Outbox.for_paths(paths).pending() == []
    ConsentStore.for_paths(paths).grant("crash-reports")
    subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    queued = Outbox.for_paths(paths).pending()
    assert [r.record["error_type"] for r in queued] == ["RuntimeError"]
    assert "someone" not in json.dumps(queued[0].record)


def test_send_due_sends_only_allowed_purposes(
    collector: HTTPSServer, aegis_paths: AegisPaths
) -> None:
    from aegis_engine.privacy.schedule import send_due

    store = ConsentStore.for_paths(aegis_paths)
    store.grant("crash-reports")
    _crash(aegis_paths)
    store.revoke("crash-reports")
    assert send_due(aegis_paths) == 0 and collector.stats.connections == 0
    store.grant("crash-reports")
    _crash(aegis_paths)
    seen: list[str] = []
    assert send_due(aegis_paths, seen.append) == 1, seen
    assert send_due(aegis_paths, seen.append) == 0, "nothing left"
    assert collector.stats.requests == ["/otel/v1/logs"]


SEND_SOON = (
    "import aegis_engine.privacy.schedule as s",
    "s.SendTimer.__init__.__kwdefaults__['first_after'] = 0.5",
)
"""Lines that make the privacy send timer's first run come after half a second."""


def test_a_monitor_session_with_default_settings_opens_no_connection(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import time

    watched = tmp_path / "Downloads"
    watched.mkdir()
    log = tmp_path / "connects.log"
    proc = subprocess.Popen(
        [
            *cli_logging_connections(log, *SEND_SOON),
            *("monitor", "--json", "--no-processes", str(watched)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    with reaped(proc):
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if '"started"' in line:
                break
        (watched / "eicar.com").write_bytes(EICAR)
        time.sleep(3)  # a detection, and the send timer ran at least once
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert not log.exists(), log.read_text()


def test_excepthook_writes_locally_and_does_not_chain(
    aegis_paths: AegisPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import threading

    from aegis_engine.privacy.crash import install_excepthook

    printed: list[object] = []
    monkeypatch.setattr(sys, "excepthook", lambda *a: printed.append(a[0]))
    monkeypatch.setattr(threading, "excepthook", lambda args: None)
    seen: list[object] = []
    install_excepthook("cli", aegis_paths)
    install_excepthook("monitor", aegis_paths, on_written=seen.append)
    try:
        raise ValueError("/home/someone/x")
    except ValueError as exc:
        sys.excepthook(ValueError, exc, exc.__traceback__)
    assert len(crashlog.list_reports(aegis_paths)) == 1, "one hook, not two chained"
    assert len(seen) == 1 and printed == [ValueError], "then the previous hook prints it"


def test_a_tray_app_session_with_default_settings_opens_no_connection(
    tmp_path: Path, aegis_home: Path
) -> None:
    import os
    import select
    import signal
    import subprocess
    import time

    log = tmp_path / "connects.log"
    tray_app = python_logging_connections(
        log,
        *SEND_SOON,
        "from aegis_gui.app import main",
        "sys.exit(main(['--no-notifications', '--timings']))",
    )
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
    }
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    proc = subprocess.Popen(
        tray_app,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    with reaped(proc):
        assert proc.stderr is not None
        deadline = time.monotonic() + 120
        shown = ""
        while "protected shown" not in shown and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stderr], [], [], 0.5)
            if ready:
                line = proc.stderr.readline()
                if not line:
                    break
                shown += line
        assert "protected shown" in shown, f"the tray app did not come up: {shown}"
        time.sleep(2)  # the send timer has run
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert not log.exists(), log.read_text()
    assert "Traceback" not in err, err
