"""Reads and writes ``settings.toml`` (the engine's settings file) for the Settings window.

The engine only reads settings (``tomllib``); the GUI must also write them, and the standard
library has no TOML writer. This adapter writes the subset the settings use (tables of
strings, numbers, booleans and lists of those) atomically through
:func:`aegis_engine.atomic.atomic_write`. Comments in a hand-edited file are not kept.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aegis_engine.atomic import atomic_write
from aegis_engine.config import load_settings
from aegis_engine.errors import ConfigError

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _string(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            raise ConfigError(f"cannot store {text!r} in settings: it is not valid text")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"cannot store {value!r} in settings")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise ConfigError(f"cannot store a {type(value).__name__} in settings")


def dumps(settings: Mapping[str, Any]) -> str:
    """TOML text for ``settings`` (top-level scalars, then tables, then nested tables)."""
    lines: list[str] = []

    def table(prefix: list[str], body: Mapping[str, Any]) -> None:
        scalars = [(k, v) for k, v in body.items() if not isinstance(v, Mapping)]
        tables = [(k, v) for k, v in body.items() if isinstance(v, Mapping)]
        if prefix and (scalars or not tables):
            if lines:
                lines.append("")
            lines.append("[" + ".".join(_key(p) for p in prefix) + "]")
        for k, v in scalars:
            lines.append(f"{_key(k)} = {_value(v)}")
        for k, v in tables:
            table([*prefix, k], v)

    table([], settings)
    return "\n".join(lines) + "\n"


class SettingsFile:
    """The settings file of a profile, read fresh and updated one table at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Any]:
        return load_settings(self.path)

    def table(self, name: str) -> dict[str, Any]:
        value = self.read().get(name, {})
        return dict(value) if isinstance(value, Mapping) else {}

    def update(self, changes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """Merge ``{table: {key: value}}`` into the file (a None value removes the key) and
        return the new settings."""
        settings = self.read()
        for name, values in changes.items():
            current = settings.get(name, {})
            merged = dict(current) if isinstance(current, Mapping) else {}
            for key, value in values.items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            if merged:
                settings[name] = merged
            else:
                settings.pop(name, None)
        atomic_write(self.path, dumps(settings).encode("utf-8"))
        return settings
