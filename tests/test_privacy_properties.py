"""Property tests (hypothesis): whatever paths, user names, host names, e-mail addresses and
tracebacks go in, none of them appears in any outgoing payload (the OTLP documents of crash
reports and usage statistics, the metadata of a sample, a look-up's request)."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from aegis_engine.privacy.allowlist import COUNTERS, build_record
from aegis_engine.privacy.crash import crash_record
from aegis_engine.privacy.otlp import encode_logs
from aegis_engine.privacy.outbox import QueuedRecord
from aegis_engine.privacy.ranges import prefix_of
from aegis_engine.privacy.redact import Redactor

# Secrets are distinctive words: long enough that finding one in a payload means it leaked.
word = st.text(alphabet=string.ascii_letters, min_size=8, max_size=16)
names = st.text(alphabet=string.ascii_letters + string.digits + "._-", min_size=8, max_size=20)


@st.composite
def identities(draw: st.DrawFn) -> dict[str, str]:
    user = draw(word)
    host = draw(names.filter(lambda s: any(c.isalpha() for c in s)))
    folder = draw(word)
    filename = draw(word) + "." + draw(st.sampled_from(["txt", "docx", "exe", "pdf", "py"]))
    domain = draw(word).lower()
    return {
        "user": user,
        "host": host,
        "folder": folder,
        "file": filename.rsplit(".", 1)[0],
        "email": f"{draw(word)}@{domain}.org",
        "email_domain": domain,
        "path": draw(
            st.sampled_from(
                [
                    f"/home/{user}/{folder}/{filename}",
                    f"C:\\Users\\{user}\\{folder}\\{filename}",
                    f"/srv/{folder}/{filename}",
                    f"~/{folder}/{filename}",
                    f"\\\\{host}\\{folder}\\{filename}",
                ]
            )
        ),
        "ip": f"10.{draw(st.integers(0, 255))}.{draw(st.integers(0, 255))}.7",
    }


def _secrets(ident: dict[str, str]) -> list[str]:
    return [ident[k] for k in ("user", "host", "folder", "file", "email", "email_domain")] + [
        ident["ip"],
        ident["path"],
    ]


def _redactor(ident: dict[str, str]) -> Redactor:
    return Redactor(
        user_names=(ident["user"],),
        host_names=(ident["host"],),
        home_dirs=(f"/home/{ident['user']}",),
    )


def _baseline() -> str:
    """A payload built without any of the generated values, to rule out chance matches."""
    when = datetime(2026, 1, 1, tzinfo=UTC)
    crash = {
        "aegis_version": "1.0",
        "os": "Linux",
        "python": "3.11.7",
        "component": "monitor",
        "error_type": "aegis_engine.errors.ScanError",
        "traceback": ["aegis_engine/scanning/walk.py:1 in walk", "<external>", "<redacted>"],
    }
    usage = {"counts": dict.fromkeys(COUNTERS, 1)}
    recs = [
        QueuedRecord("x", "crash-reports", when, crash),
        QueuedRecord("y", "usage-stats", when, usage),
    ]
    sample = {"sha256": "ab" * 32, "size": 1, "detections": ["<path> <file> <email> <ip>"]}
    return json.dumps(encode_logs(recs, service_version="0.0")) + json.dumps(sample)


BASE = _baseline()


def _payload(records: list[tuple[str, dict[str, Any]]]) -> str:
    queued = [
        QueuedRecord(f"id{i}", p, datetime(2026, 1, 1, tzinfo=UTC), r)
        for i, (p, r) in enumerate(records)
    ]
    return json.dumps(encode_logs(queued, service_version="1.0"), ensure_ascii=False)


def _raise_from_user_code(ident: dict[str, str], message: str) -> BaseException:
    """An exception whose traceback runs through a file at the user's path and whose message
    holds every identifying value."""
    source = "def handler(msg):\n    raise RuntimeError(msg)\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, ident["path"] + ".py", "exec"), namespace)
    try:
        namespace["handler"](message)
    except RuntimeError as exc:
        return exc
    raise AssertionError("unreachable")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ident=identities(), extra=st.text(max_size=40))
def test_no_identity_in_crash_reports(ident: dict[str, str], extra: str) -> None:
    for s in _secrets(ident):
        assume(s.lower() not in BASE.lower())
    message = (
        f"{extra} user {ident['user']} on {ident['host']} ({ident['ip']}) could not open "
        f"{ident['path']}; mail {ident['email']}"
    )
    exc = _raise_from_user_code(ident, message)
    record = crash_record(exc, "cli", _redactor(ident))
    payload = _payload([("crash-reports", record)])
    for s in _secrets(ident):
        assert s.lower() not in payload.lower(), (s, payload)
    assert message not in payload and "Traceback" not in payload


@settings(max_examples=60, deadline=None)
@given(ident=identities(), counters=st.dictionaries(st.text(max_size=20), st.integers()))
def test_no_identity_in_usage_stats(ident: dict[str, str], counters: dict[str, int]) -> None:
    for s in _secrets(ident):
        assume(s.lower() not in BASE.lower())
    data = {
        "aegis_version": ident["path"],
        "os": ident["host"],
        "python": ident["email"],
        "counts": {**counters, ident["user"]: 1, ident["path"]: 2, "scans": 3},
        "user": ident["user"],
        "host": ident["host"],
        "machine_id": ident["ip"],
    }
    payload = _payload([("usage-stats", build_record("usage-stats", data, _redactor(ident)))])
    for s in _secrets(ident):
        assert s.lower() not in payload.lower(), (s, payload)


@settings(max_examples=60, deadline=None)
@given(ident=identities(), detections=st.lists(st.text(max_size=30), max_size=3))
def test_no_identity_in_sample_metadata(ident: dict[str, str], detections: list[str]) -> None:
    names_in = [
        *detections,
        f"Found.In.{ident['path']}",
        f"{ident['email']} sent it",
        f"from {ident['ip']} at {ident['host']}",
        ident["user"],
    ]
    record = build_record(
        "sample-submission",
        {"sha256": "ab" * 32, "size": 68, "detections": names_in, "path": ident["path"]},
        _redactor(ident),
    )
    payload = json.dumps(record, ensure_ascii=False)
    for s in _secrets(ident):
        assume(s.lower() not in BASE.lower() and s.lower() not in json.dumps(detections).lower())
        assert s.lower() not in payload.lower(), (s, payload)


@given(st.binary(min_size=1, max_size=64))
def test_a_lookup_request_holds_five_hex_digits(data: bytes) -> None:
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    prefix = prefix_of(digest)
    assert len(prefix) == 5 and digest.startswith(prefix)
    assert all(c in "0123456789abcdef" for c in prefix)
