"""A ransomware incident: what triggered it, the processes suspended, the files touched,
and the event that tells the user (pure data, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .attribution import Candidate
from .events import ProcessRef, RansomwareEvent

__all__ = ["Incident", "first_action", "incident_event", "plausible"]


@dataclass
class Incident:
    id: str
    root: str
    reasons: list[str]
    started: float
    """Wall-clock time of the trigger."""
    report_at: float
    """Monotonic time when the alert goes out."""
    processes: list[ProcessRef] = field(default_factory=list)
    files: dict[str, None] = field(default_factory=dict)
    files_total: int = 0
    reported: bool = False
    resolved: str | None = None
    until: float = 0.0
    """Monotonic end of the cooldown: operations before it join this incident."""

    def add_file(self, path: str, cap: int) -> None:
        if path in self.files:
            return
        self.files_total += 1
        if len(self.files) < cap:
            self.files[path] = None


def incident_event(inc: Incident, action: str) -> RansomwareEvent:
    """The event (and its one-paragraph explanation) for ``inc`` after ``action``."""
    if action == "suspended":
        what = "Suspended " + ", ".join(
            f"{p.name or '?'} (pid {p.pid})" for p in inc.processes if p.outcome == "suspended"
        )
        what += ". Choose kill or resume."
    elif action == "unattributed":
        what = "No process could be identified (it may have exited, or belongs to another user)."
    elif action == "suspend-failed":
        what = "The process could not be suspended: " + ", ".join(
            f"pid {p.pid} {p.outcome}" for p in inc.processes
        )
    else:
        what = f"The process was {action} at your request."
    why = {
        "canary": "a decoy file Aegis planted was changed",
        "burst": "files were rewritten with encrypted content and originals destroyed",
    }
    reasons = "; ".join(why.get(r, r) for r in inc.reasons)
    return RansomwareEvent(
        incident=inc.id,
        action=action,
        path=inc.root,
        processes=tuple(inc.processes),
        reasons=tuple(inc.reasons),
        files=tuple(inc.files),
        files_total=inc.files_total,
        explanation=f"Possible ransomware in {inc.root}: {reasons}. {what}",
    )


def plausible(found: Sequence[Candidate]) -> bool:
    """The best candidate looks the part (:attr:`Candidate.looks_the_part`)."""
    return bool(found) and found[0].looks_the_part


def first_action(inc: Incident) -> str:
    outcomes = {p.outcome for p in inc.processes}
    if "suspended" in outcomes:
        return "suspended"
    if not inc.processes:
        return "unattributed"
    return "suspend-failed"
