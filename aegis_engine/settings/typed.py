"""The validated settings, as typed objects for each part of Aegis that uses them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import ScanLimits

if TYPE_CHECKING:
    from ..decision import DecisionEngine, Exclusions, Policy
    from ..net.config import UpdateSettings
    from ..privacy.endpoints import CloudSettings
    from ..quarantine.vault import QuarantineSettings

__all__ = ["RealtimeSettings", "Settings"]


@dataclass(frozen=True)
class RealtimeSettings:
    """``[realtime]``: on-access scanning."""

    enabled: bool = True
    folders: tuple[str, ...] = ()
    """Empty: Downloads, Desktop, Documents and the temp folder."""
    decoys: bool = True
    """The ransomware shield plants hidden decoy documents in protected folders."""
    worker_idle: float = 30.0
    """Seconds a scan worker started for on-access scanning (and then its preload server)
    stays with nothing to do before it exits: the idle monitor or tray app holds no scan
    worker for long. A user scan's workers stay warm longer (``WorkerConfig.idle_timeout``)."""


@dataclass(frozen=True)
class Settings:
    """Every table of ``settings.toml`` after validation, defaults filled in.

    ``values`` holds only valid values; ``problems`` says what in the file was not used.
    """

    values: Mapping[str, Mapping[str, Any]]
    problems: tuple[str, ...] = ()

    @classmethod
    def defaults(cls) -> Settings:
        from .schema import SCHEMA

        return cls({t: {k: s.default for k, s in keys.items()} for t, keys in SCHEMA.items()})

    def table(self, name: str) -> Mapping[str, Any]:
        return self.values.get(name, {})

    def get(self, table: str, key: str) -> Any:
        return self.values[table][key]

    @property
    def limits(self) -> ScanLimits:
        return ScanLimits(**self.table("limits"))

    @property
    def policy(self) -> Policy:
        from ..decision import Policy

        return Policy.from_settings(self.values)

    @property
    def exclusions(self) -> Exclusions:
        from ..decision import Exclusions

        return Exclusions.from_settings(self.values)

    def decision_engine(self) -> DecisionEngine:
        from ..decision import DecisionEngine

        return DecisionEngine(self.policy, self.exclusions)

    @property
    def quarantine(self) -> QuarantineSettings:
        from ..quarantine.vault import QuarantineSettings

        return QuarantineSettings.from_settings(self.values)

    @property
    def realtime(self) -> RealtimeSettings:
        t = self.table("realtime")
        folders = tuple(os.path.expanduser(f) for f in t["folders"])
        return RealtimeSettings(
            enabled=t["enabled"],
            folders=folders,
            decoys=t["decoys"],
            worker_idle=float(t["worker_idle"]),
        )

    @property
    def updates(self) -> UpdateSettings:
        """``[updates]`` as the network layer and the update client use it."""
        from ..net.config import update_settings_from

        return update_settings_from(self.values)

    @property
    def cloud(self) -> CloudSettings:
        """``[cloud]`` as the privacy senders use it (endpoints per purpose)."""
        from ..privacy.endpoints import CloudSettings

        return CloudSettings.from_settings(self.values)
