"""Alerts: detections waiting for (or past) the user's answer, and carrying the answer out.

:class:`AlertCenter` is the GUI's list of this session's detections and their state.
:class:`AlertResponder` has the engine's outcome service carry out an answer (quarantine,
allow, keep) in a worker op and updates the center on the GUI thread.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from PySide6.QtCore import QObject, Signal

from aegis_engine import Engine
from aegis_engine.decision import Action
from aegis_engine.errors import QuarantineError
from aegis_engine.response import Response

from .detection import Detection
from .ops import OpRunner


class AlertState(StrEnum):
    PENDING = "pending"
    WORKING = "working"
    QUARANTINED = "quarantined"
    ALLOWED = "allowed"
    KEPT = "kept"
    FAILED = "failed"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    AlertState.PENDING: "Waiting for you",
    AlertState.WORKING: "Working…",
    AlertState.QUARANTINED: "Quarantined",
    AlertState.ALLOWED: "Allowed",
    AlertState.KEPT: "Left in place",
    AlertState.FAILED: "Action failed",
}


@dataclass
class Alert:
    id: str
    detection: Detection
    state: AlertState = AlertState.PENDING
    item_id: str | None = None
    message: str = ""

    @property
    def open(self) -> bool:
        return self.state in (AlertState.PENDING, AlertState.FAILED)


class AlertCenter(QObject):
    """This session's alerts, newest last. Signals carry the alert id."""

    added = Signal(str)
    changed = Signal(str)
    open_count_changed = Signal(int)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._alerts: dict[str, Alert] = {}
        self._ids = itertools.count(1)

    def add(self, detection: Detection) -> Alert:
        """A new alert, or the open one for the same file and content."""
        for alert in self._alerts.values():
            same = alert.detection.path == detection.path and (
                alert.detection.report.sha256 == detection.report.sha256
            )
            if same and alert.state in (AlertState.PENDING, AlertState.WORKING):
                return alert
        alert = Alert(f"A{next(self._ids)}", detection)
        self._alerts[alert.id] = alert
        self.added.emit(alert.id)
        self.open_count_changed.emit(self.open_count)
        return alert

    def get(self, alert_id: str) -> Alert | None:
        return self._alerts.get(alert_id)

    def all(self) -> list[Alert]:
        return list(self._alerts.values())

    @property
    def open_count(self) -> int:
        return sum(a.open for a in self._alerts.values())

    def update(
        self, alert_id: str, state: AlertState, *, message: str = "", item_id: str | None = None
    ) -> None:
        alert = self._alerts.get(alert_id)
        if alert is None:
            return
        alert.state = state
        alert.message = message
        if item_id is not None:
            alert.item_id = item_id
        self.changed.emit(alert_id)
        self.open_count_changed.emit(self.open_count)


class AlertResponder(QObject):
    """Carries out answers to alerts. ``finished(alert_id, ok, text)`` confirms each one."""

    finished = Signal(str, bool, str)

    def __init__(
        self,
        engine: Engine,
        center: AlertCenter,
        runner: OpRunner,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._engine = engine
        self._center = center
        self._runner = runner

    def _begin(self, alert_id: str) -> Alert | None:
        alert = self._center.get(alert_id)
        if alert is None or alert.state not in (AlertState.PENDING, AlertState.FAILED):
            return None  # already answered (e.g. the timeout and a click crossed)
        self._center.update(alert_id, AlertState.WORKING)
        return alert

    def _fail(self, alert_id: str, what: str) -> Callable[[BaseException], None]:
        def failure(exc: BaseException) -> None:
            text = f"{what}: {exc}"
            self._center.update(alert_id, AlertState.FAILED, message=text)
            self.finished.emit(alert_id, False, text)

        return failure

    def quarantine(self, alert_id: str, *, by_user: bool = True, why: str = "") -> bool:
        alert = self._begin(alert_id)
        if alert is None:
            return False
        detection = alert.detection
        outcomes = self._engine.outcomes

        def work() -> Response:
            response = outcomes.quarantine(
                detection.report, detection.decision, chosen_by_user=by_user, why=why
            )
            if response.error is not None:
                raise QuarantineError(response.error)
            return response

        def success(response: Response) -> None:
            name = os.path.basename(detection.path)
            text = f"{name} was moved to the quarantine. You can restore it from Quarantine."
            self._center.update(
                alert_id, AlertState.QUARANTINED, message=text, item_id=response.item_id
            )
            self.finished.emit(alert_id, True, text)

        self._runner.run(
            work,
            success=success,
            failure=self._fail(alert_id, "Could not quarantine"),
            name="quarantine",
        )
        return True

    def allow(self, alert_id: str) -> bool:
        alert = self._begin(alert_id)
        if alert is None:
            return False
        detection = alert.detection

        def success(_: Response) -> None:
            text = "Allowed: this file (by its SHA-256) will not be reported again."
            self._center.update(alert_id, AlertState.ALLOWED, message=text)
            self.finished.emit(alert_id, True, text)

        self._runner.run(
            lambda: self._engine.outcomes.allow(detection.report, detection.decision),
            success=success,
            failure=self._fail(alert_id, "Could not allow it"),
            name="allow",
        )
        return True

    def apply_policy(self, alert_id: str, why: str) -> bool:
        """Nobody answered: do what the policy says (quarantine, or leave it and report)."""
        alert = self._center.get(alert_id)
        if alert is None or alert.state is not AlertState.PENDING:
            return False
        if alert.detection.policy_action is Action.QUARANTINE:
            return self.quarantine(alert_id, by_user=False, why=why)
        self._center.update(alert_id, AlertState.WORKING)
        detection = alert.detection

        def success(_: object) -> None:
            text = f"{why}; the file was left in place. Review it under Alerts."
            self._center.update(alert_id, AlertState.KEPT, message=text)
            self.finished.emit(alert_id, True, text)

        self._runner.run(
            lambda: self._engine.outcomes.keep(
                detection.report, detection.decision, chosen_by_user=False, why=why
            ),
            success=success,
            failure=self._fail(alert_id, "Could not record it"),
            name="keep",
        )
        return True
