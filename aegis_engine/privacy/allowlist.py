"""Per-purpose allowlists: the only fields an outgoing record may hold, and what each may
look like.

:func:`build_record` keeps the fields its purpose allows, checks each value's shape, passes
every string through the :class:`~aegis_engine.privacy.redact.Redactor`, and drops the rest:
an unknown field, a value of the wrong shape or a counter that is not on the list never
reaches the outbox. There is no field for an install, machine or user identifier in any
purpose, so none can be sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .redact import Redactor

__all__ = ["ALLOWLISTS", "COUNTERS", "FieldRule", "build_record"]

_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,31}$")
_OS = ("Linux", "Windows", "Darwin", "FreeBSD", "other")
_COMPONENTS = ("cli", "monitor", "tray", "engine")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.:/!-][A-Za-z0-9_.:/!<> -]{0,199}$")

COUNTERS: tuple[str, ...] = (
    "files_scanned",
    "detections",
    "quarantined",
    "restored",
    "scans",
    "monitor_sessions",
    "windows_opened",
    "lookups",
    "updates",
)
"""The counters usage statistics may hold (whole numbers, nothing else)."""

Check = Callable[[Any, Redactor], Any]
"""Returns the value as it may be sent, or None to drop the field."""


@dataclass(frozen=True)
class FieldRule:
    name: str
    check: Check


def _version(value: Any, _r: Redactor) -> str | None:
    return value if isinstance(value, str) and _VERSION.match(value) else None


def _os(value: Any, _r: Redactor) -> str | None:
    if not isinstance(value, str):
        return None
    return value if value in _OS else "other"


def _component(value: Any, _r: Redactor) -> str | None:
    return value if value in _COMPONENTS else None


def _error_type(value: Any, r: Redactor) -> str | None:
    if not isinstance(value, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_.]{0,127}$", value):
        return None
    return r.text(value) if "/" in value else value


def _frames(value: Any, r: Redactor) -> list[str] | None:
    if not isinstance(value, list):
        return None
    out: list[str] = []
    for frame in value[-40:]:
        if not isinstance(frame, str):
            continue
        if frame == "<external>" or re.match(
            r"^aegis_(engine|gui)/[A-Za-z0-9_/]+\.py:\d+ in [A-Za-z_<][A-Za-z0-9_<>]*$", frame
        ):
            out.append(frame)
        else:
            out.append("<redacted>")
    return out


def _counts(value: Any, _r: Redactor) -> dict[str, int] | None:
    if not isinstance(value, Mapping):
        return None
    return {
        k: int(v)
        for k, v in value.items()
        if k in COUNTERS and isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**53
    }


def _sha256(value: Any, _r: Redactor) -> str | None:
    return value if isinstance(value, str) and _SHA256.match(value) else None


def _size(value: Any, _r: Redactor) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    return None


def _names(value: Any, r: Redactor) -> list[str] | None:
    if not isinstance(value, list | tuple):
        return None
    out: list[str] = []
    for item in value[:50]:
        if isinstance(item, str):
            cleaned = r.text(item)
            if _NAME.match(cleaned):
                out.append(cleaned)
            else:
                out.append("<redacted>")
    return out


ALLOWLISTS: Mapping[str, tuple[FieldRule, ...]] = {
    "usage-stats": (
        FieldRule("aegis_version", _version),
        FieldRule("os", _os),
        FieldRule("python", _version),
        FieldRule("counts", _counts),
    ),
    "crash-reports": (
        FieldRule("aegis_version", _version),
        FieldRule("os", _os),
        FieldRule("python", _version),
        FieldRule("component", _component),
        FieldRule("error_type", _error_type),
        FieldRule("traceback", _frames),
    ),
    "sample-submission": (
        FieldRule("sha256", _sha256),
        FieldRule("size", _size),
        FieldRule("detections", _names),
    ),
}


def build_record(purpose_id: str, data: Mapping[str, Any], redactor: Redactor) -> dict[str, Any]:
    """The record ``purpose_id`` may send, built from ``data``: allowlisted fields only,
    each checked and redacted; everything else is dropped."""
    rules = ALLOWLISTS.get(purpose_id)
    if rules is None:
        raise KeyError(f"no allowlist for purpose {purpose_id!r}")
    record: dict[str, Any] = {}
    for rule in rules:
        if rule.name in data:
            value = rule.check(data[rule.name], redactor)
            if value is not None:
                record[rule.name] = value
    return record
