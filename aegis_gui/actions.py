"""What the GUI does to files and the vault: plain functions that run in worker ops.

No Qt here. Each function goes through the engine's public objects (the decision engine,
the quarantine vault, the history) and records in the history what was done and who chose
it, as ``aegis quarantine`` does on the command line.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aegis_engine import Engine, FileReport
from aegis_engine.decision import Action, DecisionEngine, FileDecision
from aegis_engine.errors import AegisError
from aegis_engine.history import HistoryEvent

from .settings_store import SettingsFile


@dataclass(frozen=True)
class Detection:
    """A file that is not clean, with the decision engine's verdict about it."""

    report: FileReport
    decision: FileDecision
    source: str
    """``on-access``, ``process``, ``scan`` or ``scheduled``."""
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


if TYPE_CHECKING:  # the vault module loads keyring and cryptography: only when used
    from aegis_engine.quarantine import VaultItem


def assess(
    decisions: DecisionEngine, report: FileReport, source: str, engine: Engine | None
) -> Detection:
    """Decide about ``report``; record threats in the history (when ``engine`` is given)."""
    fd = decisions.decide_report(report)
    if engine is not None and fd.verdict.is_threat:
        for d in fd.decisions:
            if d.verdict.is_threat:
                engine.history.record_detection(d, size=report.size)
    return Detection(report, fd, source)


def quarantine(
    engine: Engine, detection: Detection, *, chosen_by_user: bool, why: str = ""
) -> VaultItem:
    """Move the detected file into the vault (refused if it changed since it was scanned)."""
    fd, report = detection.decision, detection.report
    history = engine.history
    if chosen_by_user:
        history.record_user_decision(
            "quarantine", fd.file_path, verdict=fd.verdict.value, sha256=report.sha256
        )
    try:
        item = engine.quarantine.quarantine(
            report.path,
            sha256=report.sha256,
            verdict=fd.verdict.value,
            detections=[f.to_dict() for f in report.findings],
            explanation=fd.explanation,
        )
    except AegisError as exc:
        history.record_action(
            "quarantine",
            fd.file_path,
            outcome="failure",
            verdict=fd.verdict.value,
            sha256=report.sha256,
            size=report.size,
            message=str(exc),
        )
        raise
    history.record_action(
        "quarantine",
        fd.file_path,
        outcome="success",
        verdict=fd.verdict.value,
        sha256=report.sha256,
        size=report.size,
        item_id=item.id,
        message=why or None,
        rules=[r for d in fd.decisions for r in d.rules],
        explanation=fd.explanation,
    )
    return item


def keep(engine: Engine, detection: Detection, *, why: str) -> None:
    """Leave the file where it is (the policy only reports, or nobody answered an ``ask``)."""
    fd = detection.decision
    engine.history.record_action(
        fd.action.value,
        fd.file_path,
        outcome="unknown",
        verdict=fd.verdict.value,
        sha256=detection.report.sha256,
        size=detection.report.size,
        message=why,
    )


def allow(engine: Engine, detection: Detection, settings: SettingsFile) -> DecisionEngine:
    """Keep the file and allowlist its SHA-256 (``[exclusions] sha256`` in the settings).

    Returns the decision engine built from the new settings; the caller installs it."""
    report = detection.report
    engine.history.record_user_decision(
        "allow", detection.path, verdict=detection.decision.verdict.value, sha256=report.sha256
    )
    if not report.sha256:
        raise AegisError("this file has no SHA-256 (it could not be read), so it cannot be allowed")
    current = settings.table("exclusions").get("sha256", [])
    digests = [str(d) for d in current] if isinstance(current, list) else []
    if report.sha256 not in digests:
        digests.append(report.sha256)
    new = settings.update({"exclusions": {"sha256": digests}})
    return DecisionEngine.from_settings(new)


def restore(engine: Engine, item_id: str, to_dir: str | None = None) -> str:
    """Put a quarantined file back (never overwriting); returns where it went."""
    vault, history = engine.quarantine, engine.history
    item = vault.get(item_id)
    history.record_user_decision(
        "restore", item.original_path, verdict=item.verdict, sha256=item.sha256, item_id=item.id
    )
    try:
        restored = vault.restore(item.id, to_dir=to_dir)
    except AegisError as exc:
        history.record_action(
            "restore",
            item.original_path,
            outcome="failure",
            item_id=item.id,
            sha256=item.sha256,
            message=str(exc),
        )
        raise
    history.record_action(
        "restore", restored, outcome="success", item_id=item.id, sha256=item.sha256, size=item.size
    )
    return restored


def delete(engine: Engine, item_id: str) -> VaultItem | None:
    """Delete a quarantined item for good."""
    item = engine.quarantine.delete(item_id)
    where = item.original_path if item is not None else f"damaged item {item_id}"
    engine.history.record_user_decision(
        "delete", where, item_id=item.id if item else item_id, sha256=item.sha256 if item else None
    )
    engine.history.record_action(
        "delete", where, outcome="success", item_id=item.id if item else item_id
    )
    return item


def vault_items(engine: Engine) -> list[VaultItem]:
    return engine.quarantine.items()


def history_events(engine: Engine) -> list[HistoryEvent]:
    return engine.history.events()


def detection_names(detections: tuple[Mapping[str, Any], ...]) -> str:
    names = [str(d.get("name", "?")) for d in detections]
    return ", ".join(dict.fromkeys(names))
