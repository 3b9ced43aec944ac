"""Typed settings: one module reads, validates and writes ``settings.toml``.

:class:`SettingsStore` is the file (read, validate, write, reload, change notification);
:class:`Settings` is one validated state of it with typed views per part of Aegis;
:data:`~.schema.SCHEMA` lists every key with its default.
"""

from __future__ import annotations

from .schema import SCHEMA, WEEKDAYS
from .store import SettingsProblem, SettingsStore
from .toml_write import dumps
from .typed import RealtimeSettings, Settings

__all__ = [
    "SCHEMA",
    "WEEKDAYS",
    "RealtimeSettings",
    "Settings",
    "SettingsProblem",
    "SettingsStore",
    "dumps",
]
