"""Alerts: detections waiting for (or past) the user's answer, and carrying the answer out.

:class:`AlertCenter` is the GUI's list of this session's detections and their state.
:class:`AlertResponder` has the engine's outcome service carry out an answer (quarantine,
allow, keep) in a worker op and updates the center on the GUI thread.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from PySide6.QtCore import QObject, QTimer, Signal

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
    RESOLVED = "resolved"

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
    AlertState.RESOLVED: "Resolved",
}

STALE_CHECK_MS = 5000
"""How often open alerts are checked for a file that is gone or changed."""
_HASH_LIMIT = 256 << 20


def stale_reason(detection: Detection) -> str | None:
    """Why an alert no longer needs an answer (the file is gone, or its content is not what
    was found), or None. Runs in a worker: it may read the file."""
    report = detection.report
    try:
        st = os.stat(detection.path)
    except FileNotFoundError:
        return "the file no longer exists"
    except OSError:
        return None  # cannot tell: the alert stays
    if st.st_size != report.size:
        return "the file was changed since it was found"
    if report.sha256 and st.st_size <= _HASH_LIMIT:
        digest = hashlib.sha256()
        try:
            with open(detection.path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
        except FileNotFoundError:
            return "the file no longer exists"
        except OSError:
            return None
        if digest.hexdigest() != report.sha256.lower():
            return "the file was changed since it was found"
    return None


@dataclass
class Alert:
    id: str
    detection: Detection
    state: AlertState = AlertState.PENDING
    item_id: str | None = None
    message: str = ""
    checked: tuple[int, int] | None = None
    """(size, mtime_ns) when the file was last found unchanged (not hashed again until then)."""
    changed_at: float | None = None
    """When its state last changed (quarantined, allowed, ...): the time its row shows."""

    @property
    def open(self) -> bool:
        return self.state in (AlertState.PENDING, AlertState.FAILED)


_ANSWERABLE = (AlertState.PENDING, AlertState.FAILED)


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
        alert.changed_at = time.time()
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
        self._checking = False
        self._stale_timer = QTimer(self)
        self._stale_timer.setInterval(STALE_CHECK_MS)
        self._stale_timer.timeout.connect(self.resolve_stale)
        self._stale_timer.start()

    def stop(self) -> None:
        self._stale_timer.stop()

    def resolve_stale(self) -> None:
        """Close open alerts whose file is gone or changed (checked in a worker), each with a
        line in the history; the tray goes back to green when none is left."""
        waiting = [a for a in self._center.all() if a.state in _ANSWERABLE]
        if not waiting or self._checking:
            return
        self._checking = True
        checked = {a.id: a.checked for a in waiting}

        def work() -> list[tuple[str, str | None, tuple[int, int] | None]]:
            out: list[tuple[str, str | None, tuple[int, int] | None]] = []
            for alert in waiting:
                try:
                    st = os.stat(alert.detection.path)
                    seen: tuple[int, int] | None = (st.st_size, st.st_mtime_ns)
                except OSError:
                    seen = None
                if seen is not None and seen == checked[alert.id]:
                    continue  # unchanged since the last look
                why = stale_reason(alert.detection)
                out.append((alert.id, why, seen if why is None else None))
            return out

        def done(found: list[tuple[str, str | None, tuple[int, int] | None]]) -> None:
            self._checking = False
            for alert_id, why, seen in found:
                alert = self._center.get(alert_id)
                if alert is None:
                    continue
                if why is None:
                    alert.checked = seen
                else:
                    self._resolve(alert, why)

        def failed(_exc: BaseException) -> None:
            self._checking = False

        self._runner.run(work, success=done, failure=failed, name="alerts-check")

    def _resolve(self, alert: Alert, why: str) -> None:
        if alert.state not in _ANSWERABLE:
            return  # answered meanwhile
        name = os.path.basename(alert.detection.path)
        text = f"Resolved: {why}, so there is nothing left to do about {name}."
        self._center.update(alert.id, AlertState.RESOLVED, message=text)
        detection = alert.detection
        self._runner.run(
            lambda: self._engine.outcomes.resolve(detection.report, detection.decision, why),
            success=lambda _r: None,
            failure=lambda _e: None,  # the history is a record; the alert is closed anyway
            name="resolve",
        )
        self.finished.emit(alert.id, True, text)

    def _begin(self, alert_id: str) -> Alert | None:
        alert = self._center.get(alert_id)
        if alert is None or alert.state not in (AlertState.PENDING, AlertState.FAILED):
            return None  # already answered (e.g. the timeout and a click crossed)
        self._center.update(alert_id, AlertState.WORKING)
        return alert

    def _fail(self, alert_id: str, what: str) -> Callable[[BaseException], None]:
        def failure(exc: BaseException) -> None:
            text = f"{what}: {exc}"
            alert = self._center.get(alert_id)
            if alert is not None:
                alert.checked = None  # look again now: gone or changed resolves it
            self._center.update(alert_id, AlertState.FAILED, message=text)
            self.finished.emit(alert_id, False, text)
            self.resolve_stale()

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
