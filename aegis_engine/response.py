"""What Aegis does about a scanned file: decide, act as the policy says, record it.

One place for the CLI, the monitor and the GUI: :class:`Responder` turns a
:class:`~aegis_engine.results.FileReport` into a :class:`Response` - the decision, what was
actually done (quarantined, a question pending, reported), and lines for people.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .decision import Action, DecisionEngine, FileDecision
from .errors import AegisError, QuarantineError
from .results import FileReport

if TYPE_CHECKING:  # the vault and history bring keyring and cryptography: import on use
    from .history import History
    from .quarantine import FileIdentity, Vault, VaultItem

__all__ = ["AskUser", "Responder", "Response", "auto_purge"]

AskUser = Callable[[FileDecision], bool]
"""Asked when the policy says ``ask``: True quarantines the file, False keeps it."""


@dataclass(frozen=True)
class Response:
    """The decision about one file and what came of it."""

    decision: FileDecision
    taken: Action
    """What was actually done: ``quarantine`` (done), ``ask`` (your decision is pending),
    ``report`` (reported only) or ``none``."""
    item_id: str | None = None
    error: str | None = None
    note: str | None = None
    """One line on the outcome, e.g. ``quarantined as item 3f2a...``."""

    @property
    def path(self) -> str:
        return self.decision.file_path

    @property
    def explanation(self) -> list[str]:
        lines = list(self.decision.explanation)
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


class Responder:
    """Applies decisions. With ``apply_actions`` false (a plain scan) nothing is moved: the
    policy's action is only reported. ``ask`` is consulted for ``ask`` actions when actions
    are applied; without it the question stays pending (recorded in the history)."""

    def __init__(
        self,
        decisions: DecisionEngine,
        *,
        vault: Vault | None,
        history: History | None,
        apply_actions: bool,
        ask: AskUser | None = None,
    ) -> None:
        self._decisions = decisions
        self._vault = vault
        self._history = history
        self._apply = apply_actions and vault is not None
        self._ask = ask

    def respond(self, report: FileReport, *, identity: FileIdentity | None = None) -> Response:
        """Decide about ``report`` and act on the file at ``report.path``."""
        fd = self._decisions.decide_report(report)
        if not fd.verdict.is_threat:
            return Response(fd, fd.action)
        if self._history is not None:
            for d in fd.decisions:
                if d.verdict.is_threat:
                    self._history.record_detection(d, size=report.size)
        wanted = fd.action
        if wanted is Action.ASK and self._apply and self._ask is not None:
            yes = self._ask(fd)
            self._record_decision(fd, report, "quarantine" if yes else "keep")
            if not yes:
                return Response(fd, Action.REPORT, note="Kept: you chose not to quarantine it.")
            return self._quarantine(fd, report, identity)
        if wanted is Action.QUARANTINE and self._apply:
            return self._quarantine(fd, report, identity)
        if wanted is Action.QUARANTINE:
            return Response(
                fd,
                Action.REPORT,
                note="Not quarantined: this scan only reports (use --quarantine to act).",
            )
        if wanted is Action.ASK:
            self._record(fd, report, "ask", "unknown", message="waiting for your decision")
            return Response(fd, Action.ASK, note="Not quarantined: waiting for your decision.")
        return Response(fd, wanted)

    def _quarantine(
        self, fd: FileDecision, report: FileReport, identity: FileIdentity | None
    ) -> Response:
        assert self._vault is not None
        detections = [f.to_dict() for f in report.findings]
        try:
            item = self._vault.quarantine(
                report.path,
                identity=identity,
                sha256=report.sha256,
                verdict=fd.verdict.value,
                detections=detections,
                explanation=fd.explanation,
            )
        except QuarantineError as exc:
            self._record(fd, report, "quarantine", "failure", message=str(exc))
            return Response(fd, Action.REPORT, error=str(exc), note=f"Not quarantined: {exc}")
        self._record(fd, report, "quarantine", "success", item_id=item.id)
        return Response(
            fd,
            Action.QUARANTINE,
            item_id=item.id,
            note=f"Quarantined as item {item.id} (aegis quarantine restore {item.id}).",
        )

    def _record(
        self,
        fd: FileDecision,
        report: FileReport,
        action: str,
        outcome: str,
        *,
        item_id: str | None = None,
        message: str | None = None,
    ) -> None:
        if self._history is None:
            return
        self._history.record_action(
            action,
            fd.file_path,
            outcome=outcome,
            verdict=fd.verdict.value,
            sha256=report.sha256,
            size=report.size,
            item_id=item_id,
            message=message,
            rules=[r for d in fd.decisions for r in d.rules],
            explanation=fd.explanation,
        )

    def _record_decision(self, fd: FileDecision, report: FileReport, choice: str) -> None:
        if self._history is not None:
            self._history.record_user_decision(
                choice, fd.file_path, verdict=fd.verdict.value, sha256=report.sha256
            )


def auto_purge(
    vault: Vault, history: History | None, days: int, warn: Callable[[str], None]
) -> list[VaultItem]:
    """The automatic purge: items older than ``days`` (0 = never) leave the vault for good."""
    if days <= 0:
        return []
    try:
        purged = vault.purge(days)
    except AegisError as exc:
        warn(f"automatic quarantine purge failed: {exc}")
        return []
    for item in purged:
        if history is not None:
            history.record_action(
                "purge",
                item.original_path,
                outcome="success",
                sha256=item.sha256,
                size=item.size,
                item_id=item.id,
                message=f"older than {days} days",
            )
    if purged:
        warn(f"purged {len(purged)} quarantined item(s) older than {days} days")
    return purged
