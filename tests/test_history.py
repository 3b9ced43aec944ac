"""Detection history: records, queries, corrupt databases, ECS export."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aegis_engine.decision import Decision, DecisionEngine
from aegis_engine.errors import ConfigError, HistoryError
from aegis_engine.history import ECS_VERSION, History, parse_since
from aegis_engine.paths import AegisPaths
from aegis_engine.results import Finding, FindingKind, ObjectResult, Severity, Verdict

SHA = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _decision(path: str = "/home/u/eicar.com") -> Decision:
    finding = Finding("eicar", "EICAR-Test-File", Severity.MALICIOUS, kind=FindingKind.SIGNATURE)
    obj = ObjectResult(path, Verdict.MALICIOUS, [finding], sha256=SHA, size=68)
    return DecisionEngine().decide(obj, file_path=path)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def history(aegis_paths: AegisPaths, clock: Clock) -> Iterator[History]:
    with History(aegis_paths.history_file, warn=pytest.fail, clock=clock) as h:
        yield h


def test_records_detections_actions_and_decisions(history: History, clock: Clock) -> None:
    d = _decision()
    history.record_detection(d, size=68)
    clock.now += timedelta(seconds=1)
    history.record_action("quarantine", d.file_path, outcome="success", item_id="ab12", sha256=SHA)
    clock.now += timedelta(seconds=1)
    history.record_user_decision("restore", d.file_path, item_id="ab12")
    events = history.events()
    assert [e.kind for e in events] == ["detection", "action", "decision"]
    det, act, dec = events
    assert det.time == T0 and det.verdict == "malicious" and det.action == "quarantine"
    assert det.rules == ("EICAR-Test-File",) and det.sha256 == SHA and det.size == 68
    assert det.detections[0]["detector"] == "eicar"
    assert any("Verdict malicious" in line for line in det.explanation)
    assert (act.action, act.outcome, act.item_id) == ("quarantine", "success", "ab12")
    assert (dec.decision, dec.item_id) == ("restore", "ab12")
    assert json.loads(json.dumps(det.to_dict()))["time"] == "2026-11-01T12:00:00.000Z"
    assert "malicious (EICAR-Test-File) -> quarantine" in det.summary()


def test_since(history: History, clock: Clock) -> None:
    for days in range(5):
        clock.now = T0 + timedelta(days=days)
        history.record_action("report", f"/f{days}", outcome="success")
    assert [e.path for e in history.events(since=T0 + timedelta(days=3))] == ["/f3", "/f4"]
    assert len(history.events()) == 5


def test_parse_since() -> None:
    now = datetime(2026, 11, 10, 0, 0, tzinfo=UTC)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("30m", now) == now - timedelta(minutes=30)
    assert parse_since("2w", now) == now - timedelta(weeks=2)
    assert parse_since("2026-11-01T08:00+02:00") == datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
    local = parse_since("2026-11-01")
    assert local == datetime(2026, 11, 1).astimezone().astimezone(UTC)
    for bad in ("yesterday", "7 days", "-3d", ""):
        with pytest.raises(ConfigError, match="--since"):
            parse_since(bad, now)


def test_paths_that_are_not_utf8_are_stored(history: History) -> None:
    odd = os.fsdecode(b"/tmp/bad\xffname.exe")
    history.record_action("quarantine", odd, outcome="success")
    assert history.events()[0].path == "/tmp/bad\\xffname.exe"


def test_database_is_private(history: History, aegis_paths: AegisPaths) -> None:
    history.record_action("report", "/x", outcome="success")
    db = aegis_paths.history_file
    files = [p for p in db.parent.iterdir() if p.name.startswith(db.name)]
    assert db in files
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def test_garbage_database_is_moved_aside_and_rebuilt(aegis_paths: AegisPaths) -> None:
    db = aegis_paths.history_file
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"this is not a database at all" * 100)
    seen: list[str] = []
    with History(db, warn=seen.append) as history:
        history.record_action("report", "/x", outcome="success")
        assert len(history.events()) == 1
    assert len(seen) == 1 and "damaged" in seen[0] and "new, empty history" in seen[0]
    aside = [p for p in db.parent.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1
    assert aside[0].read_bytes().startswith(b"this is not a database")


def test_malformed_pages_are_detected_and_rebuilt(aegis_paths: AegisPaths) -> None:
    db = aegis_paths.history_file
    with History(db, warn=pytest.fail) as history:
        for i in range(400):
            history.record_action("report", f"/some/long/path/number/{i}" * 4, outcome="success")
    raw = bytearray(db.read_bytes())
    page = 4096
    assert len(raw) > 4 * page
    for offset in range(page, len(raw), page):
        raw[offset : offset + 64] = os.urandom(64)  # damage every page header but the first
    db.write_bytes(bytes(raw))
    seen: list[str] = []
    with History(db, warn=seen.append) as history:
        assert history.events() == []
        history.record_action("report", "/after", outcome="success")
        assert [e.path for e in history.events()] == ["/after"]
    assert seen and "damaged" in seen[0]


def test_corruption_found_while_open_is_rebuilt(aegis_paths: AegisPaths) -> None:
    db = aegis_paths.history_file
    seen: list[str] = []
    history = History(db, warn=seen.append)
    history.record_action("report", "/x", outcome="success")

    def broken(conn: sqlite3.Connection) -> None:
        raise sqlite3.DatabaseError("database disk image is malformed")

    with pytest.raises(HistoryError, match="malformed"):  # the retry fails too
        history._run(broken)
    assert seen and "damaged" in seen[0]
    history.record_action("report", "/y", outcome="success")
    assert [e.path for e in history.events()] == ["/y"]
    history.close()


def test_ecs_export(history: History, clock: Clock) -> None:
    d = _decision("/home/u/Downloads/eicar.com")
    history.record_detection(d, size=68)
    clock.now += timedelta(milliseconds=5)
    history.record_action(
        "quarantine", d.file_path, outcome="success", sha256=SHA, size=68, item_id="ab12"
    )
    history.record_action("quarantine", "/x", outcome="failure", message="changed")
    history.record_user_decision("keep", "/y")
    out = io.StringIO()
    assert history.export_ecs(out) == 4
    docs = [json.loads(line) for line in out.getvalue().splitlines()]
    det, act, failed, dec = docs
    for doc in docs:
        assert doc["ecs"]["version"] == ECS_VERSION
        assert doc["@timestamp"].endswith("Z")
        assert {"kind", "category", "type", "action", "outcome"} <= doc["event"].keys()
        assert isinstance(doc["event"]["category"], list)
        assert "host" not in doc  # only when asked for
    assert det["@timestamp"] == "2026-11-01T12:00:00.000Z"
    assert det["event"]["kind"] == "alert" and "malware" in det["event"]["category"]
    assert det["file"] == {
        "path": "/home/u/Downloads/eicar.com",
        "name": "eicar.com",
        "directory": "/home/u/Downloads",
        "hash": {"sha256": SHA},
        "size": 68,
    }
    assert det["rule"]["name"] == "EICAR-Test-File"
    assert det["threat"]["indicator"]["file"]["hash"]["sha256"] == SHA
    assert det["aegis"]["verdict"] == "malicious" and det["aegis"]["explanation"]
    assert act["event"]["kind"] == "event" and act["event"]["action"] == "quarantine"
    assert act["event"]["outcome"] == "success" and act["aegis"]["item_id"] == "ab12"
    assert act["@timestamp"] == "2026-11-01T12:00:00.005Z"
    assert failed["event"]["outcome"] == "failure"
    assert dec["event"]["action"] == "user-decision" and dec["aegis"]["decision"] == "keep"

    with_host = io.StringIO()
    history.export_ecs(with_host, hostname="pc-17", since=T0 + timedelta(milliseconds=1))
    lines = with_host.getvalue().splitlines()
    assert len(lines) == 3
    assert json.loads(lines[0])["host"] == {"hostname": "pc-17"}


def test_member_objects_export_the_file_on_disk(history: History) -> None:
    finding = Finding("eicar", "EICAR-Test-File", Severity.MALICIOUS)
    obj = ObjectResult("/d/a.zip!x.com", Verdict.MALICIOUS, [finding], sha256=SHA)
    history.record_detection(DecisionEngine().decide(obj, file_path="/d/a.zip"))
    out = io.StringIO()
    history.export_ecs(out)
    doc = json.loads(out.getvalue())
    assert doc["file"]["path"] == "/d/a.zip"
    assert doc["aegis"]["object_path"] == "/d/a.zip!x.com"


def test_history_file_location_follows_aegis_home(aegis_home: Path) -> None:
    assert AegisPaths.default().history_file == aegis_home / "data" / "history.sqlite3"
