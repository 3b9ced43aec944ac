"""What the Settings window edits: a view of the engine's typed settings.

Reading and writing go through the engine's settings module (:mod:`aegis_engine.settings`),
which validates every value against one schema. Tables the window edits::

    [realtime]   enabled = true, folders = [...]   (empty: Downloads, Desktop, Documents, temp)
                 decoys = true                     (the ransomware shield's hidden decoys)
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

from dataclasses import dataclass, field
from typing import Any

from aegis_engine.errors import ConfigError
from aegis_engine.settings import Settings, SettingsStore
from aegis_engine.settings.schema import check

from .schedule import Schedule


@dataclass(frozen=True)
class Preferences:
    realtime: bool = True
    decoys: bool = True
    folders: tuple[str, ...] = ()
    exclude_paths: tuple[str, ...] = ()
    exclude_sha256: tuple[str, ...] = ()
    schedule: Schedule = field(default_factory=Schedule)
    update_server: str = ""
    proxy: str = ""
    app_updates: str = "stage"
    """New builds of Aegis itself: "stage" (download, verify, apply at the next start),
    "check" (only say one is there) or "off"."""
    prompt_timeout: int = 120
    autostart: bool = False

    def changes(self) -> dict[str, dict[str, Any]]:
        """The settings these preferences set (None: the key is removed, default applies)."""
        s = self.schedule
        return {
            "realtime": {
                "enabled": self.realtime,
                "folders": list(self.folders),
                "decoys": None if self.decoys else False,  # written only when turned off
            },
            "exclusions": {
                "paths": list(self.exclude_paths) or None,
                "sha256": [h.lower() for h in self.exclude_sha256] or None,
            },
            "schedule": {
                "enabled": s.enabled,
                "frequency": s.frequency,
                "weekday": s.weekday,
                "time": s.time,
                "kind": s.kind,
            },
            "updates": {
                "server": self.update_server or None,
                "proxy": self.proxy or None,
                "app": None if self.app_updates == "stage" else self.app_updates,
            },
            "tray": {"prompt_timeout": self.prompt_timeout},
        }

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid setting (the engine's own checks)."""
        for table, body in self.changes().items():
            for key, value in body.items():
                problem = None if value is None else check(table, key, value)
                if problem is not None:
                    raise ConfigError(f"[{table}] {key} = {value!r}: {problem}")


def load(settings: Settings) -> Preferences:
    """Preferences from the engine's validated settings."""
    rt, ex = settings.table("realtime"), settings.table("exclusions")
    sc, up = settings.table("schedule"), settings.table("updates")
    return Preferences(
        realtime=rt["enabled"],
        decoys=rt["decoys"],
        folders=tuple(rt["folders"]),
        exclude_paths=tuple(ex["paths"]),
        exclude_sha256=tuple(ex["sha256"]),
        schedule=Schedule(
            enabled=sc["enabled"],
            frequency=sc["frequency"],
            weekday=sc["weekday"],
            time=sc["time"],
            kind=sc["kind"],
        ),
        update_server=up["server"],
        proxy=up["proxy"],
        app_updates=up["app"],
        prompt_timeout=settings.get("tray", "prompt_timeout"),
    )


def save(store: SettingsStore, prefs: Preferences) -> Settings:
    """Write ``prefs`` through the engine's settings store (other tables and keys are kept);
    the engine and every listener see the new settings."""
    prefs.validate()
    return store.update(prefs.changes())
