"""Real-time protection: on-access scanning, the process monitor and the ransomware shield.

``Monitor(engine, watch, protect=...)`` runs all three; ``subscribe()`` delivers events
(:mod:`.events`), each with a JSON form. See :mod:`.service` for the threads.
"""

from .behaviour import BehaviourRules, ProcessFacts
from .events import (
    DetectionEvent,
    ErrorEvent,
    MonitorEvent,
    ProcessEvent,
    ProcessRef,
    RansomwareEvent,
    RuleHit,
    StatusEvent,
)
from .handlers import OutcomeHandler, ReportHandler, report_only
from .options import MonitorOptions, default_protected_folders, default_watch_folders
from .service import Monitor, Subscriber

__all__ = [
    "BehaviourRules",
    "DetectionEvent",
    "ErrorEvent",
    "Monitor",
    "MonitorEvent",
    "MonitorOptions",
    "OutcomeHandler",
    "ProcessEvent",
    "ProcessFacts",
    "ProcessRef",
    "RansomwareEvent",
    "ReportHandler",
    "RuleHit",
    "StatusEvent",
    "Subscriber",
    "default_protected_folders",
    "default_watch_folders",
    "report_only",
]
