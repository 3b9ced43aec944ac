"""What real-time protection reports: plain, immutable event objects with a JSON form.

Every event's :meth:`to_dict` has ``event`` (its kind) and ``ts`` (seconds since the epoch),
plus ``path`` / ``pid`` / ``verdict`` / ``action`` where they apply. Kinds:

``detection``   on-access scan of a file found something (verdict and the decision's action)
``process``     a new process broke a behaviour rule or runs a detected executable
``ransomware``  the ransomware shield stopped (or tried to stop) a process, or the user decided
``error``       something could not be watched, scanned or done; ``code`` says what
``status``      the monitor started, stopped, fell back to another method, or caught up
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "DetectionEvent",
    "ErrorEvent",
    "MonitorEvent",
    "ProcessEvent",
    "ProcessRef",
    "RansomwareEvent",
    "RuleHit",
    "StatusEvent",
]


def _now() -> float:
    return time.time()


@dataclass(frozen=True, kw_only=True)
class MonitorEvent:
    """Base of every event."""

    kind: ClassVar[str] = "event"
    ts: float = field(default_factory=_now)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.kind, "ts": round(self.ts, 3)}
        out.update(self._fields())
        return {k: v for k, v in out.items() if v is not None}

    def _fields(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, kw_only=True)
class DetectionEvent(MonitorEvent):
    """A file scanned on access is not clean."""

    kind: ClassVar[str] = "detection"
    path: str
    verdict: str
    action: str
    source: str = "on-access"
    """``on-access`` (a file event), ``rescan`` (caught up after an overflow), ``process``."""
    detections: tuple[str, ...] = ()
    sha256: str | None = None
    explanation: tuple[str, ...] = ()
    outcome: str | None = None
    """What carrying out the action did, e.g. ``quarantined`` or ``failed: ...``."""
    details: Mapping[str, Any] = field(default_factory=dict)

    def _fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "verdict": self.verdict,
            "action": self.action,
            "source": self.source,
            "detections": list(self.detections),
            "sha256": self.sha256,
            "explanation": list(self.explanation),
            "outcome": self.outcome,
        }
        out.update(self.details)
        return out


@dataclass(frozen=True)
class RuleHit:
    """One behaviour rule that matched, with the human explanation filled in."""

    id: str
    severity: str
    explanation: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "severity": self.severity, "explanation": self.explanation}


@dataclass(frozen=True, kw_only=True)
class ProcessEvent(MonitorEvent):
    """A new process broke behaviour rules, or its executable was detected."""

    kind: ClassVar[str] = "process"
    pid: int
    name: str
    exe: str | None
    verdict: str
    action: str
    rules: tuple[RuleHit, ...] = ()
    ppid: int | None = None
    parent: str | None = None
    user: str | None = None
    sha256: str | None = None
    detections: tuple[str, ...] = ()
    explanation: tuple[str, ...] = ()

    def _fields(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "name": self.name,
            "path": self.exe,
            "verdict": self.verdict,
            "action": self.action,
            "rules": [r.to_dict() for r in self.rules],
            "ppid": self.ppid,
            "parent": self.parent,
            "user": self.user,
            "sha256": self.sha256,
            "detections": list(self.detections),
            "explanation": list(self.explanation),
        }


@dataclass(frozen=True)
class ProcessRef:
    """A process the shield acted on, and what happened to it."""

    pid: int
    name: str | None
    exe: str | None
    outcome: str
    """``suspended`` | ``killed`` | ``resumed`` | ``exited`` | ``denied`` | ``failed``."""
    user: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "pid": self.pid,
            "name": self.name,
            "exe": self.exe,
            "outcome": self.outcome,
            "user": self.user,
        }
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True, kw_only=True)
class RansomwareEvent(MonitorEvent):
    """The shield stopped a process, could not, or the user chose kill / resume."""

    kind: ClassVar[str] = "ransomware"
    incident: str
    action: str
    """``suspended``, ``suspend-failed``, ``unattributed``, ``killed`` or ``resumed``."""
    path: str
    """The protected folder where it happened."""
    processes: tuple[ProcessRef, ...] = ()
    reasons: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    """Files touched by the burst (deleted, renamed, rewritten, or written encrypted)."""
    files_total: int = 0
    explanation: str = ""

    @property
    def pid(self) -> int | None:
        return self.processes[0].pid if self.processes else None

    def _fields(self) -> dict[str, Any]:
        return {
            "incident": self.incident,
            "action": self.action,
            "path": self.path,
            "pid": self.pid,
            "verdict": "malicious",
            "processes": [p.to_dict() for p in self.processes],
            "reasons": list(self.reasons),
            "files": list(self.files),
            "files_total": self.files_total,
            "explanation": self.explanation,
        }


@dataclass(frozen=True, kw_only=True)
class ErrorEvent(MonitorEvent):
    """Something could not be watched, scanned or done. Never fatal for the monitor."""

    kind: ClassVar[str] = "error"
    code: str
    """E.g. ``overflow``, ``inotify-limit``, ``permission-denied``, ``watch-lost``,
    ``scan-failed``, ``action-failed``, ``events-dropped``."""
    message: str
    path: str | None = None
    pid: int | None = None

    def _fields(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "path": self.path, "pid": self.pid}


@dataclass(frozen=True, kw_only=True)
class StatusEvent(MonitorEvent):
    """The monitor's own state changed."""

    kind: ClassVar[str] = "status"
    state: str
    """``started``, ``stopped``, ``fallback``, ``rescan-done``, ``watch-restored``."""
    message: str = ""
    path: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def _fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "message": self.message, "path": self.path}
        out.update(self.details)
        return out
