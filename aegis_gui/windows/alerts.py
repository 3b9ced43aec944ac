"""Alerts and history: this session's alerts and the detection history, with a filter,
the decision engine's explanation for the selected row, and the actions that apply."""

from __future__ import annotations

import os
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from aegis_engine.display import readable_sizes
from aegis_engine.history import HistoryEvent

from ..alerts import Alert, AlertState
from ..format import local_time, show_path
from .common import muted, setup_table, setup_window

FILTERS = (
    ("Everything", "all"),
    ("Waiting for you", "open"),
    ("Detections", "detection"),
    ("Actions taken", "action"),
    ("Your decisions", "decision"),
)


@dataclass(frozen=True)
class Row:
    when: float
    kind: str
    status: str
    verdict: str
    path: str
    detail: str
    explanation: tuple[str, ...]
    alert_id: str | None = None
    item_id: str | None = None
    open: bool = False


def alert_row(alert: Alert) -> Row:
    det = alert.detection
    acted = alert.state not in (AlertState.PENDING, AlertState.WORKING)
    return Row(  # a "Quarantined" row shows when it was quarantined, not when it was found
        when=alert.changed_at if acted and alert.changed_at is not None else det.time,
        kind="detection",
        status=alert.state.label,
        verdict=det.decision.verdict.value,
        path=det.path,
        detail=readable_sizes(
            ", ".join(det.names) + (f" — {alert.message}" if alert.message else "")
        ),
        explanation=tuple(readable_sizes(line) for line in det.decision.explanation),
        alert_id=alert.id,
        item_id=alert.item_id,
        open=alert.state in (AlertState.PENDING, AlertState.FAILED),
    )


_POLICY_WORDS = {
    "quarantine": "Found: to be quarantined",
    "ask": "Found: waiting for your answer",
    "report": "Found: reported only",
    "none": "Found",
}
_DONE_WORDS = {
    "quarantine": "Quarantined",
    "restore": "Restored",
    "delete": "Deleted for good",
    "purge": "Removed from the quarantine (old)",
    "allow": "Allowed",
    "keep": "Left in place",
    "resolve": "Resolved",
    "ask": "Waiting for your answer",
}
_CHOICE_WORDS = {
    "quarantine": "You chose: quarantine",
    "keep": "You chose: leave it",
    "allow": "You chose: allow",
    "restore": "You chose: restore",
    "delete": "You chose: delete",
}


def history_status(event: HistoryEvent) -> str:
    """The status column of a history row, in plain words."""
    if event.kind == "detection":
        return _POLICY_WORDS.get(event.action or "none", "Found")
    if event.kind == "decision":
        return _CHOICE_WORDS.get(event.decision or "", f"You chose: {event.decision}")
    action = event.action or ""
    if event.outcome == "failure":
        return f"Could not {action}" if action else "Failed"
    if event.outcome == "unknown" and action != "ask":
        return f"{action.capitalize()}: not known yet"
    return _DONE_WORDS.get(action, action.capitalize())


def history_row(event: HistoryEvent) -> Row:
    status = history_status(event)
    detail = ", ".join(event.rules)
    if event.message:
        detail = f"{detail} — {event.message}" if detail else event.message
    return Row(
        when=event.time.timestamp(),
        kind=event.kind,
        status=status,
        verdict=event.verdict or "",
        path=event.file_path or event.path,
        detail=readable_sizes(detail),  # limits stored as byte counts read as MiB, GiB
        explanation=tuple(readable_sizes(line) for line in event.explanation),
        item_id=event.item_id,
    )


class AlertsWindow(QWidget):
    """Emits ``choice(alert_id, choice)`` for Quarantine / Allow / Details on an open alert,
    ``refresh_requested()`` and ``show_quarantine()``."""

    choice = Signal(str, str)
    refresh_requested = Signal()
    show_quarantine = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        setup_window(self, "Alerts and history")
        self.setObjectName("alerts-window")
        self._alerts: list[Alert] = []
        self._history: list[HistoryEvent] = []
        self.rows: list[Row] = []
        lay = QVBoxLayout(self)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Show"))
        self.filter = QComboBox()
        for label, key in FILTERS:
            self.filter.addItem(label, key)
        bar.addWidget(self.filter)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter by file or detection name")
        self.search.setClearButtonEnabled(True)
        bar.addWidget(self.search, 1)
        self.refresh_button = QPushButton("Refresh")
        bar.addWidget(self.refresh_button)
        lay.addLayout(bar)
        self.table = QTableWidget()
        setup_table(self.table, ["Time", "Status", "Verdict", "File", "Details"], stretch=4)
        self.empty = muted("No alerts. Detections, actions and your decisions will be listed here.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.explanation = QPlainTextEdit()
        self.explanation.setReadOnly(True)
        self.explanation.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.explanation.setPlaceholderText("Select a row to see why Aegis decided as it did.")
        split = QSplitter(Qt.Orientation.Vertical)
        top = QWidget()
        top_lay = QVBoxLayout(top)
        top_lay.setContentsMargins(0, 0, 0, 0)
        top_lay.addWidget(self.table, 1)
        top_lay.addWidget(self.empty)
        split.addWidget(top)
        split.addWidget(self.explanation)
        split.setSizes([320, 160])
        lay.addWidget(split, 1)
        actions = QHBoxLayout()
        self.quarantine_button = QPushButton("Quarantine")
        self.quarantine_button.setObjectName("alerts-quarantine")
        self.allow_button = QPushButton("Allow")
        self.allow_button.setObjectName("alerts-allow")
        self.details_button = QPushButton("Details…")
        self.vault_button = QPushButton("Open quarantine")
        for b in (self.quarantine_button, self.allow_button, self.details_button):
            actions.addWidget(b)
        actions.addStretch(1)
        actions.addWidget(self.vault_button)
        lay.addLayout(actions)
        self.filter.currentIndexChanged.connect(self._fill)
        self.search.textChanged.connect(self._fill)
        self.table.itemSelectionChanged.connect(self._selected)
        self.refresh_button.clicked.connect(self.refresh_requested)
        self.quarantine_button.clicked.connect(lambda: self._act("quarantine"))
        self.allow_button.clicked.connect(lambda: self._act("allow"))
        self.details_button.clicked.connect(lambda: self._act("details"))
        self.vault_button.clicked.connect(self.show_quarantine)
        self.resize(860, 560)
        self._fill()

    def set_data(self, alerts: list[Alert], history: list[HistoryEvent] | None = None) -> None:
        self._alerts = list(alerts)
        if history is not None:
            self._history = list(history)
        self._fill()

    def _all_rows(self) -> list[Row]:
        history = [history_row(e) for e in self._history]
        in_history = {r.item_id for r in history if r.item_id and r.kind == "action"}
        # an answered alert whose action the history lists already is not shown twice
        rows = [
            alert_row(a)
            for a in self._alerts
            if a.open or a.item_id is None or a.item_id not in in_history
        ]
        rows += history
        rows.sort(key=lambda r: (not r.open, -r.when))
        return rows

    def _fill(self) -> None:
        key = self.filter.currentData()
        needle = self.search.text().strip().lower()
        selected = self.current_row()
        rows = []
        for r in self._all_rows():
            if key == "open" and not r.open:
                continue
            if key in ("detection", "action", "decision") and (r.alert_id or r.kind != key):
                continue
            if needle and needle not in f"{r.path} {r.detail}".lower():
                continue
            rows.append(r)
        self.rows = rows
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            cells = [
                local_time(r.when),
                r.status,
                r.verdict,
                os.path.basename(show_path(r.path)),
                r.detail,
            ]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(show_path(r.path) if col == 3 else text)
                if r.open:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(i, col, item)
        self.empty.setVisible(not rows)
        self.table.setVisible(bool(rows))
        if not self._alerts and not self._history:
            self.empty.setText(
                "No alerts yet. Detections, actions and your decisions will be listed here."
            )
        else:
            self.empty.setText("Nothing matches this filter.")
        if selected is not None and selected in rows:
            self.table.selectRow(rows.index(selected))
        self._selected()

    def current_row(self) -> Row | None:
        idx = self.table.currentRow()
        sel = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not sel or idx < 0 or idx >= len(self.rows):
            return None
        return self.rows[idx]

    def select_alert(self, alert_id: str) -> None:
        for i, r in enumerate(self.rows):
            if r.alert_id == alert_id:
                self.table.selectRow(i)
                return

    def _selected(self) -> None:
        row = self.current_row()
        self.explanation.setPlainText(
            "" if row is None else f"{show_path(row.path)}\n\n" + "\n".join(row.explanation)
        )
        open_alert = row is not None and row.alert_id is not None and row.open
        self.quarantine_button.setEnabled(open_alert)
        self.allow_button.setEnabled(open_alert)
        self.details_button.setEnabled(row is not None and row.alert_id is not None)

    def _act(self, what: str) -> None:
        row = self.current_row()
        if row is not None and row.alert_id is not None:
            self.choice.emit(row.alert_id, what)


__all__ = ["AlertsWindow", "Row", "alert_row", "history_row"]
