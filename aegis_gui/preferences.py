"""What the Settings window edits, read from and written to ``settings.toml``.

Tables (the engine's own ``[exclusions]`` plus tables the tray app owns)::

    [realtime]   enabled = true, folders = [...]   (empty: Downloads, Desktop, Documents, temp)
    [exclusions] paths = [...], sha256 = [...]     (the decision engine's allowlist)
    [schedule]   enabled, frequency = "daily" | "weekly", weekday = "monday".., time = "HH:MM",
                 kind = "quick" | "full"
    [updates]    server = "", proxy = ""           (empty: the built-in server, no proxy)
    [tray]       prompt_timeout = 120              (seconds before an unanswered alert's
                                                    policy default applies)

``autostart`` ("Start Aegis when I log in") is not in the settings file: the XDG autostart
entry itself is the record (:mod:`aegis_gui.autostart`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from aegis_engine.errors import ConfigError

from .schedule import WEEKDAYS, Schedule
from .settings_store import SettingsFile

_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_URL = re.compile(r"^(https?|socks5h?)://[^\s]+$")


@dataclass(frozen=True)
class Preferences:
    realtime: bool = True
    folders: tuple[str, ...] = ()
    exclude_paths: tuple[str, ...] = ()
    exclude_sha256: tuple[str, ...] = ()
    schedule: Schedule = field(default_factory=Schedule)
    update_server: str = ""
    proxy: str = ""
    prompt_timeout: int = 120
    autostart: bool = False

    def validate(self) -> None:
        """Raise ConfigError with a sentence a person can act on."""
        if not _TIME.match(self.schedule.time):
            raise ConfigError(f"scheduled scan time {self.schedule.time!r}: use HH:MM")
        for label, url in (("update server", self.update_server), ("proxy", self.proxy)):
            if url and not _URL.match(url):
                raise ConfigError(f"{label} {url!r}: use a URL like https://host:port")
        if self.update_server.startswith("http://"):
            raise ConfigError("the update server must use https://")
        for digest in self.exclude_sha256:
            if not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
                raise ConfigError(f"{digest!r} is not a SHA-256 (64 hexadecimal characters)")
        if not 10 <= self.prompt_timeout <= 3600:
            raise ConfigError("the answer time must be between 10 and 3600 seconds")


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value if isinstance(v, str))
    return ()


def _table(settings: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = settings.get(name, {})
    return value if isinstance(value, Mapping) else {}


def load(settings: Mapping[str, Any]) -> Preferences:
    """Preferences from settings; a value of the wrong type falls back to its default."""
    d = Preferences()
    rt, ex = _table(settings, "realtime"), _table(settings, "exclusions")
    sc, up = _table(settings, "schedule"), _table(settings, "updates")
    tray = _table(settings, "tray")
    sched = d.schedule
    weekday = sc.get("weekday", sched.weekday)
    timeout = tray.get("prompt_timeout", d.prompt_timeout)
    return Preferences(
        realtime=rt["enabled"] is True if isinstance(rt.get("enabled"), bool) else d.realtime,
        folders=_strings(rt.get("folders", [])),
        exclude_paths=_strings(ex.get("paths", [])),
        exclude_sha256=_strings(ex.get("sha256", [])),
        schedule=replace(
            sched,
            enabled=sc.get("enabled") is True,
            frequency="daily" if sc.get("frequency") == "daily" else "weekly",
            weekday=weekday if weekday in WEEKDAYS else sched.weekday,
            time=str(sc.get("time", sched.time)),
            kind="full" if sc.get("kind") == "full" else "quick",
        ),
        update_server=str(up.get("server", "")),
        proxy=str(up.get("proxy", "")),
        prompt_timeout=timeout
        if isinstance(timeout, int) and not isinstance(timeout, bool)
        else d.prompt_timeout,
    )


def save(store: SettingsFile, prefs: Preferences) -> dict[str, Any]:
    """Write ``prefs`` into the settings file (other tables and keys are kept)."""
    prefs.validate()
    s = prefs.schedule
    return store.update(
        {
            "realtime": {"enabled": prefs.realtime, "folders": list(prefs.folders)},
            "exclusions": {
                "paths": list(prefs.exclude_paths) or None,
                "sha256": [h.lower() for h in prefs.exclude_sha256] or None,
            },
            "schedule": {
                "enabled": s.enabled,
                "frequency": s.frequency,
                "weekday": s.weekday,
                "time": s.time,
                "kind": s.kind,
            },
            "updates": {"server": prefs.update_server or None, "proxy": prefs.proxy or None},
            "tray": {"prompt_timeout": prefs.prompt_timeout},
        }
    )
