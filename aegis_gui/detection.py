"""A detection as the tray app holds it: the final report, the decision, where it came from.

No Qt here, and no outcome logic: deciding, acting and recording are the engine's
:class:`~aegis_engine.response.OutcomeService` (``engine.outcomes``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aegis_engine import Engine, FileReport
from aegis_engine.decision import Action, FileDecision
from aegis_engine.response import Mode


@dataclass(frozen=True)
class Detection:
    """A file that is not clean, with the decision engine's verdict about it."""

    report: FileReport
    decision: FileDecision
    source: str
    """``real-time``, ``process``, ``scan`` or ``scheduled``."""
    time: float = field(default_factory=time.time)

    @property
    def path(self) -> str:
        return self.report.path

    @property
    def names(self) -> list[str]:
        return list(dict.fromkeys(n for d in self.decision.decisions for n in d.rules))

    @property
    def policy_action(self) -> Action:
        return self.decision.action


def assess(engine: Engine, report: FileReport, source: str) -> Detection:
    """Decide about ``report`` through the outcome service (the tray app asks the user
    itself: the detection is recorded, the answer comes later)."""
    response = engine.outcomes.respond(report, mode=Mode.DEFER, client="tray")
    return Detection(report, response.decision, source)


def detection_names(detections: tuple[Mapping[str, Any], ...]) -> str:
    names = [str(d.get("name", "?")) for d in detections]
    return ", ".join(dict.fromkeys(names))
