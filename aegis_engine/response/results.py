"""What an outcome came to: typed results of the outcome service, with lines for people."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ..decision import Action, Decision, FileDecision

if TYPE_CHECKING:
    from ..quarantine import VaultItem

__all__ = ["Mode", "RemoveResult", "Response", "RestoreResult"]


class Mode(StrEnum):
    """What the command that scanned may do about a threat."""

    REPORT = "report"
    """Report only: nothing is moved (``aegis scan``, ``aegis monitor --report-only``)."""
    ACT = "act"
    """Carry out the policy (``scan --quarantine``, ``aegis monitor``)."""
    DEFER = "defer"
    """A person is asked by the client (the tray app); their answer comes later."""


@dataclass(frozen=True)
class Response:
    """The decision about one file and what came of it."""

    decision: FileDecision
    taken: Action
    """What was actually done: ``quarantine`` (done), ``ask`` (your decision is pending),
    ``report`` (reported only, or the action failed) or ``none``."""
    item_id: str | None = None
    error: str | None = None
    action_line: str | None = None
    """Replaces the decision's ``Action ...`` line when what happened is not what the policy
    said (a report-only command, a failure, your answer): one true sentence."""
    note: str | None = None
    """One more line on the outcome, e.g. ``Quarantined as item 3f2a...``."""

    @property
    def path(self) -> str:
        return self.decision.file_path

    def decision_lines(self, d: Decision) -> list[str]:
        """``d``'s explanation with the action line true for what happened."""
        if self.action_line is None or not d.verdict.is_threat:
            return list(d.explanation)
        return [self.action_line if line.startswith("Action ") else line for line in d.explanation]

    @property
    def explanation(self) -> list[str]:
        fd = self.decision
        if len(fd.decisions) == 1 and fd.decisions[0].object_path == fd.file_path:
            lines = self.decision_lines(fd.decisions[0])
        else:
            lines = []
            for d in fd.decisions:
                lines.append(f"{d.object_path}:")
                lines.extend(f"  {line}" for line in self.decision_lines(d))
        if self.note:
            lines.append(self.note)
        return lines

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action": self.taken.value,
            "policy_action": self.decision.action.value,
            "explanation": self.explanation,
        }
        if self.item_id is not None:
            out["quarantine_id"] = self.item_id
        if self.error is not None:
            out["action_error"] = self.error
        return out


@dataclass(frozen=True)
class RestoreResult:
    """A restored item: where it went, and whether it is now kept (allowed)."""

    item: VaultItem
    path: str
    allowed: bool = False
    allow_error: str | None = None


@dataclass(frozen=True)
class RemoveResult:
    """An item deleted for good (``item`` is None for a damaged item, named by ``item_id``)."""

    item_id: str
    item: VaultItem | None
