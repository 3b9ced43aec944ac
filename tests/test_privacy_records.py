"""The pure side of what may leave: the redactor, per-purpose allowlists, the outbox, the
OTLP encoder, the sent log and the k-anonymous range files."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import write_settings

from aegis_engine.errors import ConfigError, ConsentRequired
from aegis_engine.paths import AegisPaths
from aegis_engine.privacy import ConsentStore
from aegis_engine.privacy.allowlist import build_record
from aegis_engine.privacy.endpoints import CloudSettings
from aegis_engine.privacy.otlp import encode_logs, gzip_body, logs_url
from aegis_engine.privacy.outbox import Outbox
from aegis_engine.privacy.ranges import (
    HEADER,
    LINE_LEN,
    RangeFormatError,
    Reputation,
    lookup_in,
    parse_range,
    prefix_of,
    read_hash_list,
    write_ranges,
)
from aegis_engine.privacy.redact import Redactor, coarse_time

R = Redactor(user_names=("kowalski",), host_names=("tardis-7",), home_dirs=("/home/kowalski",))


def test_redactor_removes_paths_names_addresses() -> None:
    text = (
        "cannot open /home/kowalski/Secret Plans/budget.xlsx on tardis-7 "
        "(C:\\Users\\kowalski\\x.doc) from 192.168.1.20 or fe80::1:2:3, "
        "mail jan.kowalski@example.org, file report-2026.pdf"
    )
    out = R.text(text)
    for gone in ("kowalski", "tardis-7", "budget", "Users", "192.168", "fe80", "@", "report-2026"):
        assert gone not in out, (gone, out)
    assert "<email>" in out and "<ip>" in out and ("<path>" in out or "<home>" in out)


def test_traceback_keeps_only_aegis_frames_and_the_type() -> None:
    try:
        from aegis_engine.privacy import ranges

        ranges.prefix_of("/home/kowalski/secret.txt")
    except ValueError as exc:
        frames = R.traceback(exc)
        assert frames[-1].startswith("aegis_engine/privacy/ranges.py:")
        assert frames[-1].endswith(" in prefix_of")
        assert all(f == "<external>" or f.startswith("aegis_") for f in frames)
        assert R.error_type(exc) == "ValueError"
        assert "kowalski" not in json.dumps(frames)


def test_coarse_time_is_the_hour() -> None:
    moment = datetime(2026, 12, 6, 20, 17, 33, 123, tzinfo=UTC)
    assert coarse_time(moment) == datetime(2026, 12, 6, 20, tzinfo=UTC)


def test_allowlist_drops_unknown_fields_and_wrong_shapes() -> None:
    record = build_record(
        "usage-stats",
        {
            "aegis_version": "1.2.0",
            "os": "Linux",
            "counts": {"files_scanned": 10, "home": 3, "detections": -1, "scans": True},
            "install_id": "5f6e",
            "machine_id": "abc",
            "user": "kowalski",
        },
        R,
    )
    assert record == {"aegis_version": "1.2.0", "os": "Linux", "counts": {"files_scanned": 10}}
    crash = build_record(
        "crash-reports",
        {"error_type": "/home/x", "traceback": ["/home/kowalski/a.py:1", "<external>"]},
        R,
    )
    assert crash == {"traceback": ["<redacted>", "<external>"]}
    with pytest.raises(KeyError):
        build_record("made-up", {}, R)


def test_outbox_bounds_expiry_revoke_and_corruption(aegis_paths: AegisPaths) -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    seen: list[str] = []
    box = Outbox(
        aegis_paths.state_dir / "outbox.json",
        warn=seen.append,
        clock=lambda: now[0],
        max_per_purpose=3,
    )
    for i in range(5):
        box.add("usage-stats", {"counts": {"scans": i}})
    box.add("crash-reports", {"error_type": "ValueError"})
    usage = box.pending("usage-stats")
    assert [r.record["counts"]["scans"] for r in usage] == [2, 3, 4], "oldest dropped first"
    assert box.drop_purpose("usage-stats") == 3
    assert box.pending("usage-stats") == [] and len(box.pending()) == 1
    now[0] += timedelta(days=31)
    assert box.pending() == [], "records older than 30 days are dropped unsent"
    box.add("crash-reports", {"error_type": "KeyError"})
    box.path.write_text('{"records": [{"id": 1}')
    assert box.pending() == []
    assert seen and "damaged" in seen[0] and "set aside" in seen[0]
    assert list(box.path.parent.glob("outbox.json.corrupt-*"))
    box.add("crash-reports", {"error_type": "OSError"})
    assert len(box.pending()) == 1, "a fresh outbox works after one was set aside"


def test_revoking_empties_that_purposes_outbox(aegis_paths: AegisPaths) -> None:
    store = ConsentStore.for_paths(aegis_paths)
    box = Outbox.for_paths(aegis_paths)
    store.grant("usage-stats")
    store.grant("crash-reports")
    box.add("usage-stats", {"counts": {"scans": 1}})
    box.add("crash-reports", {"error_type": "ValueError"})
    store.revoke("usage-stats")
    assert [r.purpose for r in box.pending()] == ["crash-reports"]
    # A record of a purpose that is off is dropped at the next read with the consent store.
    box.add("usage-stats", {"counts": {"scans": 2}})
    assert [r.purpose for r in box.pending(consent=store)] == ["crash-reports"]


def test_changing_an_endpoint_re_asks_consent(aegis_paths: AegisPaths) -> None:
    settings = write_settings(aegis_paths, '[cloud]\nlookup_url = "https://a.example/r"\n')
    store = ConsentStore.for_paths(aegis_paths)
    store.grant("cloud-lookup")
    store.require("cloud-lookup")
    assert store.state("cloud-lookup").endpoint == "https://a.example/r"
    settings.write_text('[cloud]\nlookup_url = "https://b.example/r"\n')
    state = store.state("cloud-lookup")
    assert not state.granted and state.endpoint_changed
    with pytest.raises(ConsentRequired, match="another endpoint"):
        store.require("cloud-lookup")
    store.grant("cloud-lookup")
    store.require("cloud-lookup")


def test_cloud_settings_are_https_only_and_none_preset() -> None:
    assert CloudSettings.from_settings({}).endpoints() == {}
    ok = CloudSettings.from_settings({"cloud": {"lookup_url": "https://127.0.0.1:8443/r/"}})
    assert ok.lookup_url == "https://127.0.0.1:8443/r"
    for bad in ("http://x.example", "https://u:p@x.example", "https://x.example/?q=1", 3):
        with pytest.raises(ConfigError):
            CloudSettings.from_settings({"cloud": {"lookup_url": bad}})
    with pytest.raises(ConfigError):
        CloudSettings.from_settings({"cloud": {"telemetry": "https://x"}})


def test_otlp_logs_document_has_no_identifier() -> None:
    from aegis_engine.privacy.outbox import QueuedRecord

    rec = QueuedRecord(
        "id1",
        "crash-reports",
        datetime(2026, 1, 1, 5, tzinfo=UTC),
        {"error_type": "ValueError", "traceback": ["<external>"], "python": "3.11.2"},
    )
    doc = encode_logs([rec], service_version="1.0")
    body = json.loads(gzip.decompress(gzip_body(doc)))
    res = body["resourceLogs"][0]
    keys = {a["key"] for a in res["resource"]["attributes"]}
    assert keys == {"service.name", "service.version"}
    log = res["scopeLogs"][0]["logRecords"][0]
    assert log["timeUnixNano"] == str(int(rec.queued_at.timestamp()) * 10**9)
    attrs = {a["key"]: a["value"] for a in log["attributes"]}
    assert attrs["aegis.traceback"] == {"arrayValue": {"values": [{"stringValue": "<external>"}]}}
    assert "traceId" not in log and "spanId" not in log
    assert logs_url("https://c.example/otel/") == "https://c.example/otel/v1/logs"


def _sha(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def test_range_files_are_padded_to_one_size_and_match_locally(tmp_path: Path) -> None:
    bad = [(_sha(i), f"Bad.{i}") for i in range(40)]
    good = [(_sha(i), "") for i in range(100, 120)]
    # Crowd one prefix so that it needs more than the minimum number of slots.
    crowd = [("abcde" + hashlib.sha256(bytes([i])).hexdigest()[5:], "Crowd") for i in range(20)]
    result = write_ranges(tmp_path / "out", bad + crowd, good)
    files = [p for p in (tmp_path / "out" / "range").iterdir()]
    sizes = {p.stat().st_size for p in files}
    assert sizes == {result.file_size} == {len(HEADER) + result.slots * LINE_LEN}
    assert result.slots == 32 and result.known_bad == 60 and result.known_good == 20
    target = _sha(7)
    entries = parse_range(prefix_of(target), (tmp_path / "out/range" / target[:5]).read_bytes())
    hit = lookup_in(entries, target)
    assert hit.reputation is Reputation.KNOWN_BAD and hit.name == "Bad.7"
    assert lookup_in(entries, _sha(100_000)).reputation is Reputation.UNKNOWN
    g = _sha(105)
    got = parse_range(g[:5], (tmp_path / "out/range" / g[:5]).read_bytes())
    assert lookup_in(got, g).reputation is Reputation.KNOWN_GOOD
    assert parse_range("00000", (tmp_path / "out/range/empty").read_bytes()) == {}
    with pytest.raises(RangeFormatError):
        parse_range("00000", b"<html>not found</html>")


def test_hash_lists_keep_sha256_only(tmp_path: Path) -> None:
    lst = tmp_path / "x.hsb"
    lst.write_text(f"{_sha(1)}:68:Eicar.Test\n{'a' * 32}:10:Md5.Only\n# comment\n{_sha(2)}\n")
    seen: list[str] = []
    assert read_hash_list(lst, seen.append) == [(_sha(1), "Eicar.Test"), (_sha(2), "")]
    assert seen and "1 line" in seen[0]
