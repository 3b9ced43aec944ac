"""The outcome service: decide -> act -> record, the only code that touches the vault and the
history for an outcome. The CLI, the monitor and the tray app call it.

Every method records the history once: a detection (with the action this command carries
out, not the policy's when they differ), then what was done and who chose it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..decision import Action, DecisionEngine, FileDecision
from ..errors import AegisError, ConfigError
from ..results import FileReport, worst
from .results import Mode, RemoveResult, Response, RestoreResult

if TYPE_CHECKING:  # the vault and history bring keyring and cryptography: import on use
    from ..history import History
    from ..quarantine import FileIdentity, Vault, VaultItem
    from ..settings import SettingsStore

__all__ = ["AskUser", "OutcomeService", "finalize"]

AskUser = Callable[[FileDecision], bool]
"""Asked when the policy says ``ask``: True quarantines the file, False keeps it."""

_REPORT_ONLY = {
    "scan": "this scan only reports, so the file was left in place (use --quarantine to act)",
    "monitor": "the monitor only reports (actions are off), so the file was left in place",
    "tray": "this scan only reports, so the file was left in place",
}


def finalize(report: FileReport, fd: FileDecision) -> None:
    """Give the report's objects their final verdicts (exclusions, corroboration): a report
    is final when it leaves the engine, no client corrects it afterwards."""
    decided = {d.object_path: d.verdict for d in fd.decisions}
    for obj in report.objects:
        final = decided.get(obj.path, obj.verdict)
        if obj.verdict.is_threat or final.is_threat:
            obj.verdict = final
    if report.objects:
        report.verdict = worst(o.verdict for o in report.objects)
    elif report.verdict.is_threat:
        report.verdict = fd.verdict


def _record_item_action(
    history: History | None,
    item: VaultItem,
    action: str,
    path: str,
    outcome: str,
    *,
    size: int | None = None,
    message: str | None = None,
    with_id: bool = True,
) -> None:
    """One action on a vault item in the history, when there is one."""
    if history is not None:
        history.record_action(
            action,
            path,
            outcome=outcome,
            sha256=item.sha256,
            size=size,
            item_id=item.id if with_id else None,
            message=message,
        )


class OutcomeService:
    """Decides about scan reports and carries out outcomes: respond, quarantine, keep, allow,
    restore, delete, purge. Thread-safe; the vault and history are opened on first use."""

    def __init__(
        self,
        decisions: Callable[[], DecisionEngine],
        *,
        vault: Callable[[], Vault] | None,
        history: Callable[[], History | None],
        settings: SettingsStore | None = None,
    ) -> None:
        self._decisions = decisions
        self._vault = vault
        self._history = history
        self._settings = settings
        self._lock = threading.Lock()

    # -- deciding ------------------------------------------------------------------------------
    def decide(self, report: FileReport) -> FileDecision:
        """The decision about ``report``, applied to it (final verdicts); records nothing."""
        fd = self._decisions().decide_report(report)
        finalize(report, fd)
        return fd

    def respond(
        self,
        report: FileReport,
        *,
        mode: Mode,
        client: str = "scan",
        ask: AskUser | None = None,
        identity: FileIdentity | None = None,
    ) -> Response:
        """Decide about ``report``, act as ``mode`` allows, record it once."""
        if self._settings is not None:
            self._settings.refresh()  # an allowlist entry written by another process counts
        fd = self.decide(report)
        if not fd.verdict.is_threat:
            return Response(fd, fd.action)
        wanted = fd.action
        policy = f"your policy for {fd.verdict.value} files is {wanted.value}"
        if mode is Mode.REPORT:
            self._record_detections(fd, report, Action.REPORT)
            if wanted is Action.REPORT:
                return Response(fd, Action.REPORT)
            why = _REPORT_ONLY.get(client, _REPORT_ONLY["scan"])
            return Response(fd, Action.REPORT, action_line=f"Action report: {policy}, but {why}.")
        if mode is Mode.DEFER:
            # the person is asked first (the policy applies only if nobody answers)
            self._record_detections(
                fd, report, Action.REPORT if wanted is Action.REPORT else Action.ASK
            )
            if wanted is Action.REPORT:
                return Response(fd, Action.REPORT)
            return Response(fd, Action.ASK, note="Waiting for your answer in the tray app.")
        self._record_detections(fd, report, wanted)
        if wanted is Action.ASK and ask is not None and self._vault is not None:
            if ask(fd):
                self._user_decision(fd, report, "quarantine")
                return self._quarantine(fd, report, identity)
            return self.keep(report, fd, chosen_by_user=True, why="you chose to keep it")
        if wanted is Action.QUARANTINE and self._vault is not None:
            return self._quarantine(fd, report, identity)
        if wanted is Action.ASK:
            self._action(fd, report, "ask", "unknown", message="waiting for your decision")
            return Response(
                fd, Action.ASK, note="Waiting for your decision; the file stays where it is."
            )
        return Response(fd, wanted)

    # -- outcomes of one detection -------------------------------------------------------------
    def quarantine(
        self, report: FileReport, fd: FileDecision, *, chosen_by_user: bool, why: str = ""
    ) -> Response:
        """Move the file into the vault (refused if it changed since it was scanned)."""
        if chosen_by_user:
            self._user_decision(fd, report, "quarantine")
        return self._quarantine(fd, report, None, why=why)

    def keep(
        self, report: FileReport, fd: FileDecision, *, chosen_by_user: bool, why: str
    ) -> Response:
        """Leave the file where it is (you chose so, or nobody answered and the policy only
        reports or asks)."""
        if chosen_by_user:
            self._user_decision(fd, report, "keep")
        self._action(fd, report, "keep", "success", message=why)
        return Response(
            fd, Action.REPORT, action_line=f"Action keep: {why}; the file was left in place."
        )

    def allow(self, report: FileReport, fd: FileDecision) -> Response:
        """Keep the file and allowlist its SHA-256 (``[exclusions] sha256``): it is not
        reported again while its content is the same, wherever it is."""
        self._user_decision(fd, report, "allow")
        if not report.sha256:
            raise AegisError(
                "this file has no SHA-256 (it could not be read), so it cannot be allowed"
            )
        self._require_settings().add_to_list("exclusions", "sha256", report.sha256.lower())
        self._action(fd, report, "allow", "success", message="added to the allowlist (SHA-256)")
        return Response(
            fd,
            Action.NONE,
            action_line="Action allow: you allowed this content; it will not be reported again.",
        )

    def resolve(self, report: FileReport, fd: FileDecision, why: str) -> Response:
        """Close a detection nobody needs to answer any more (the file is gone or was
        changed since it was found: a changed file is scanned again as a new one)."""
        self._action(fd, report, "resolve", "success", message=why)
        return Response(fd, Action.NONE, action_line=f"Resolved: {why}.")

    # -- outcomes for vault items --------------------------------------------------------------
    def restore(
        self, item_id: str, *, to_dir: str | None = None, allow: bool = False
    ) -> RestoreResult:
        """Put a quarantined file back (never overwriting). With ``allow`` the file at its
        new path with its SHA-256 is kept: no scan acts on it again until it changes."""
        vault, history = self._require_vault(), self._history()
        item = vault.get(item_id)
        if history is not None:
            history.record_user_decision(
                "restore",
                item.original_path,
                verdict=item.verdict,
                sha256=item.sha256,
                item_id=item.id,
                message="and allow it" if allow else None,
            )
        # Keep the file before it is back, so that real-time protection (here or in another
        # process) never acts on it; moved to the real name if the restore had to pick another.
        digest = item.sha256.lower()
        folder = (
            os.path.abspath(to_dir) if to_dir is not None else os.path.dirname(item.original_path)
        )
        expected = os.path.join(folder, os.path.basename(item.original_path))
        allow_error: str | None = None
        if allow:
            allow_error = self._keep_file(expected, digest)
        try:
            restored = vault.restore(item.id, to_dir=to_dir)
        except AegisError as exc:
            if allow and allow_error is None:
                self._unkeep_file(expected, digest)
            _record_item_action(
                history, item, "restore", item.original_path, "failure", message=str(exc)
            )
            raise
        _record_item_action(history, item, "restore", restored, "success", size=item.size)
        if not allow:
            return RestoreResult(item, restored)
        if allow_error is None and restored != expected:
            allow_error = self._keep_file(restored, digest)
            self._unkeep_file(expected, digest)
        if allow_error is not None:
            _record_item_action(
                history, item, "allow", restored, "failure", message=allow_error, with_id=False
            )
            return RestoreResult(item, restored, allowed=False, allow_error=allow_error)
        _record_item_action(
            history,
            item,
            "allow",
            restored,
            "success",
            message="kept: not acted on again while its content is unchanged",
        )
        return RestoreResult(item, restored, allowed=True)

    def _keep_file(self, path: str, digest: str) -> str | None:
        """Add ``[exclusions] files`` entry; returns the problem, or None."""
        try:
            self._require_settings().add_to_list(
                "exclusions", "files", {"path": path, "sha256": digest}
            )
        except AegisError as exc:
            return str(exc)
        return None

    def _unkeep_file(self, path: str, digest: str) -> None:
        with contextlib.suppress(AegisError):
            self._require_settings().remove_from_list(
                "exclusions", "files", {"path": path, "sha256": digest}
            )

    def delete(self, item_id: str) -> RemoveResult:
        """Delete a quarantined item for good."""
        item = self._require_vault().delete(item_id)
        where = item.original_path if item is not None else f"damaged item {item_id}"
        found = item.id if item is not None else item_id
        history = self._history()
        if history is not None:
            history.record_user_decision(
                "delete", where, item_id=found, sha256=item.sha256 if item else None
            )
            history.record_action("delete", where, outcome="success", item_id=found)
        return RemoveResult(found, item)

    def purge(self, days: int) -> list[VaultItem]:
        """Items quarantined ``days`` or more days ago leave the vault for good."""
        purged = self._require_vault().purge(days)
        history = self._history()
        for item in purged:
            _record_item_action(
                history,
                item,
                "purge",
                item.original_path,
                "success",
                size=item.size,
                message=f"older than {days} days",
            )
        return purged

    def auto_purge(self, days: int, warn: Callable[[str], None]) -> list[VaultItem]:
        """The automatic purge (``[quarantine] purge_days``; 0 = never); a failure warns."""
        if days <= 0:
            return []
        try:
            purged = self.purge(days)
        except AegisError as exc:
            warn(f"automatic quarantine purge failed: {exc}")
            return []
        if purged:
            warn(f"purged {len(purged)} quarantined item(s) older than {days} days")
        return purged

    # -- steps ---------------------------------------------------------------------------------
    def _require_vault(self) -> Vault:
        if self._vault is None:
            raise AegisError("no quarantine vault for this outcome service")
        return self._vault()

    def _require_settings(self) -> SettingsStore:
        if self._settings is None:
            raise ConfigError("no settings file to record the allowlist in")
        return self._settings

    def _quarantine(
        self,
        fd: FileDecision,
        report: FileReport,
        identity: FileIdentity | None,
        *,
        why: str = "",
    ) -> Response:
        from ..errors import QuarantineError

        try:
            item = self._require_vault().quarantine(
                report.path,
                identity=identity,
                sha256=report.sha256,
                verdict=fd.verdict.value,
                detections=[f.to_dict() for f in report.findings],
                explanation=fd.explanation,
            )
        except QuarantineError as exc:
            self._action(fd, report, "quarantine", "failure", message=str(exc))
            return Response(
                fd,
                Action.REPORT,
                error=str(exc),
                action_line=f"Action report: quarantine failed ({exc}), so the file is still "
                "where it was.",
            )
        self._action(fd, report, "quarantine", "success", item_id=item.id, message=why or None)
        return Response(
            fd,
            Action.QUARANTINE,
            item_id=item.id,
            note=f"Quarantined as item {item.id} (aegis quarantine restore {item.id}).",
        )

    def _record_detections(self, fd: FileDecision, report: FileReport, action: Action) -> None:
        history = self._history()
        if history is None:
            return
        for d in fd.decisions:
            if d.verdict.is_threat:
                history.record_detection(d, size=report.size, action=action.value)

    def _action(
        self,
        fd: FileDecision,
        report: FileReport,
        action: str,
        outcome: str,
        *,
        item_id: str | None = None,
        message: str | None = None,
    ) -> None:
        history = self._history()
        if history is None:
            return
        history.record_action(
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

    def _user_decision(self, fd: FileDecision, report: FileReport, choice: str) -> None:
        history = self._history()
        if history is not None:
            history.record_user_decision(
                choice, fd.file_path, verdict=fd.verdict.value, sha256=report.sha256
            )
