"""Every key ``settings.toml`` may hold: its type, its default and what makes it valid.

One table of :class:`Key` per settings table. :func:`check` validates one value and returns
the problem as words a person can act on (or None), so the reader and the writer agree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..config import ScanLimits

__all__ = ["SCHEMA", "WEEKDAYS", "Key", "check"]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_URL = re.compile(r"^(https?|socks5h?)://[^\s/]+[^\s]*$")

Checker = Callable[[Any], str | None]


@dataclass(frozen=True)
class Key:
    """One setting: ``expect`` names the type for messages; ``check`` returns the problem."""

    default: Any
    expect: str
    check: Checker


def _int(minimum: int = 0, maximum: int | None = None) -> Checker:
    def check(v: Any) -> str | None:
        if not isinstance(v, int) or isinstance(v, bool):
            return "expected a whole number"
        if maximum is not None and not minimum <= v <= maximum:
            return f"expected a number between {minimum} and {maximum}"
        if v < minimum:
            return f"expected {minimum} or more"
        return None

    return check


def _number(v: Any) -> str | None:
    if not isinstance(v, int | float) or isinstance(v, bool):
        return "expected a number"
    if not math.isfinite(v) or v < 0:
        return "expected a number of 0 or more"
    return None


def _seconds(minimum: float) -> Checker:
    def check(v: Any) -> str | None:
        problem = _number(v)
        if problem is None and v < minimum:
            return f"expected {minimum:g} or more"
        return problem

    return check


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "expected true or false"


def _choice(*options: str) -> Checker:
    def check(v: Any) -> str | None:
        if v in options:
            return None
        return "expected one of " + ", ".join(f'"{o}"' for o in options)

    return check


def _string(v: Any) -> str | None:
    return None if isinstance(v, str) else "expected text in quotes"


def _url(*, https_only: bool = False) -> Checker:
    def check(v: Any) -> str | None:
        if not isinstance(v, str):
            return "expected a URL in quotes"
        if v == "":
            return None
        if not _URL.match(v):
            return "expected a URL like https://host:port"
        if https_only and not v.startswith("https://"):
            return "expected an https:// URL"
        return None

    return check


def _time(v: Any) -> str | None:
    return None if isinstance(v, str) and _TIME.match(v) else 'expected a time like "08:30"'


def _list_of(item: Checker, what: str) -> Checker:
    def check(v: Any) -> str | None:
        if not isinstance(v, list):
            return f"expected a list of {what}"
        for element in v:
            problem = item(element)
            if problem is not None:
                return f"{element!r} in the list: {problem}"
        return None

    return check


def _sha256(v: Any) -> str | None:
    if isinstance(v, str) and _SHA256.match(v.strip()):
        return None
    return "expected a SHA-256 (64 hexadecimal characters)"


def _pin(v: Any) -> str | None:
    from ..errors import ConfigError
    from ..net.config import normalize_pin  # the network layer's own rule for a pin

    if not isinstance(v, str):
        return "expected a key pin in quotes"
    try:
        normalize_pin(v)
    except ConfigError as exc:
        return str(exc)
    return None


def _kept_file(v: Any) -> str | None:
    if not isinstance(v, Mapping) or set(v) != {"path", "sha256"}:
        return 'expected { path = "...", sha256 = "..." }'
    if not isinstance(v["path"], str) or not v["path"]:
        return "expected a path in quotes"
    return _sha256(v["sha256"])


def _limits() -> dict[str, Key]:
    out: dict[str, Key] = {}
    defaults = ScanLimits()
    for f in fields(ScanLimits):
        default = getattr(defaults, f.name)
        if isinstance(default, float):
            out[f.name] = Key(default, "seconds (a number)", _number)
        elif "size" in f.name:
            out[f.name] = Key(default, "bytes (a whole number)", _int())
        elif "timeout" in f.name:
            out[f.name] = Key(default, "seconds (a whole number)", _int())
        else:
            out[f.name] = Key(default, "a whole number", _int())
    return out


_ACTIONS = ("report", "ask", "quarantine")

SCHEMA: Mapping[str, Mapping[str, Key]] = {
    "limits": _limits(),
    "decision": {
        "malicious": Key("quarantine", "an action", _choice(*_ACTIONS)),
        "suspicious": Key("ask", "an action", _choice(*_ACTIONS)),
        "quarantine_requires_signature": Key(True, "true or false", _bool),
    },
    "exclusions": {
        "paths": Key([], "a list of globs", _list_of(_string, "paths in quotes")),
        "sha256": Key([], "a list of SHA-256", _list_of(_sha256, "SHA-256 digests")),
        "signatures": Key([], "a list of names", _list_of(_string, "names in quotes")),
        "files": Key([], "a list of kept files", _list_of(_kept_file, "kept files")),
    },
    "quarantine": {
        "purge_days": Key(30, "a whole number", _int()),
        "use_keyring": Key(True, "true or false", _bool),
    },
    "realtime": {
        "enabled": Key(True, "true or false", _bool),
        "folders": Key([], "a list of folders", _list_of(_string, "folders in quotes")),
        "decoys": Key(True, "true or false", _bool),
        "worker_idle": Key(30.0, "seconds (a number, 1 or more)", _seconds(1.0)),
    },
    "schedule": {
        "enabled": Key(False, "true or false", _bool),
        "frequency": Key("weekly", "daily or weekly", _choice("daily", "weekly")),
        "weekday": Key("sunday", "a weekday", _choice(*WEEKDAYS)),
        "time": Key("12:00", "HH:MM", _time),
        "kind": Key("quick", "quick or full", _choice("quick", "full")),
    },
    "updates": {
        "server": Key("", "an https URL", _url(https_only=True)),
        "root": Key("", "a file path", _string),
        "ca_file": Key("", "a file path", _string),
        "pins": Key([], "a list of key pins", _list_of(_pin, "key pins")),
        "client_cert": Key("", "a file path", _string),
        "client_key": Key("", "a file path", _string),
        "proxy": Key("", "a proxy URL", _url()),
        "app": Key("stage", "stage, check or off", _choice("stage", "check", "off")),
    },
    "cloud": {
        "lookup_url": Key("", "an https URL", _url(https_only=True)),
        "usage_stats_url": Key("", "an https URL", _url(https_only=True)),
        "crash_reports_url": Key("", "an https URL", _url(https_only=True)),
        "sample_submission_url": Key("", "an https URL", _url(https_only=True)),
        "lookup_cache_hours": Key(24.0, "a number of hours, 0 or more", _number),
    },
    "tray": {
        "prompt_timeout": Key(120, "seconds", _int(10, 3600)),
    },
}
"""Table name -> key -> :class:`Key`."""


def check(table: str, key: str, value: Any) -> str | None:
    """The problem with ``[table] key = value``, or None when it is valid."""
    spec = SCHEMA.get(table, {}).get(key)
    if spec is None:
        return f"unknown setting [{table}] {key}"
    return spec.check(value)
