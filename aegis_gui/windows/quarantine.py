"""The quarantine: what is in the vault, with restore (never overwriting) and delete, each
confirmed first."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..detection import detection_names
from ..format import human_bytes, local_time
from .common import Confirm, ask_yes_no, muted, setup_table, setup_window

if TYPE_CHECKING:  # the vault module loads keyring and cryptography: only when used
    from aegis_engine.quarantine import VaultItem


def _pick_dir(parent: QWidget) -> str:
    return QFileDialog.getExistingDirectory(parent, "Restore into which folder?")


class QuarantineWindow(QWidget):
    """Emits ``restore_requested(item_id, to_dir or "")``, ``delete_requested(item_id)`` and
    ``refresh_requested()``; the controller answers with :meth:`set_items` / :meth:`notice`."""

    restore_requested = Signal(str, str)
    delete_requested = Signal(str)
    refresh_requested = Signal()

    def __init__(
        self,
        *,
        confirm: Confirm = ask_yes_no,
        pick_dir: Callable[[QWidget], str] = _pick_dir,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        setup_window(self, "Quarantine")
        self.setObjectName("quarantine-window")
        self.confirm = confirm
        self.pick_dir = pick_dir
        self.items: list[VaultItem] = []
        lay = QVBoxLayout(self)
        lay.addWidget(
            muted(
                "Quarantined files are encrypted and cannot run. Restoring never overwrites a "
                "file: if the name is taken, the file comes back as “name (restored)”."
            )
        )
        self.table = QTableWidget()
        setup_table(
            self.table, ["Quarantined", "File", "Original folder", "Size", "Detected as"], stretch=2
        )
        lay.addWidget(self.table, 2)
        self.empty = muted("The quarantine is empty.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.empty)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.details.setPlaceholderText("Select a file to see why it was quarantined.")
        lay.addWidget(self.details, 1)
        self.status = muted("")
        self.status.setObjectName("quarantine-status")
        lay.addWidget(self.status)
        row = QHBoxLayout()
        self.restore_button = QPushButton("Restore")
        self.restore_button.setObjectName("quarantine-restore")
        self.restore_to_button = QPushButton("Restore to…")
        self.delete_button = QPushButton("Delete for good…")
        self.delete_button.setObjectName("quarantine-delete")
        self.refresh_button = QPushButton("Refresh")
        for b in (self.restore_button, self.restore_to_button, self.delete_button):
            row.addWidget(b)
        row.addStretch(1)
        row.addWidget(self.refresh_button)
        lay.addLayout(row)
        self.table.itemSelectionChanged.connect(self._selected)
        self.restore_button.clicked.connect(lambda: self._restore(False))
        self.restore_to_button.clicked.connect(lambda: self._restore(True))
        self.delete_button.clicked.connect(self._delete)
        self.refresh_button.clicked.connect(self.refresh_requested)
        self.resize(860, 520)
        self.set_items([])

    def set_items(self, items: list[VaultItem]) -> None:
        selected = self.selected()
        self.items = sorted(items, key=lambda it: it.quarantined_at, reverse=True)
        self.table.setRowCount(len(self.items))
        for i, it in enumerate(self.items):
            cells = [
                local_time(it.quarantined_at),
                it.name,
                os.path.dirname(it.display_path),
                human_bytes(it.size),
                detection_names(it.detections) or it.verdict,
            ]
            for col, text in enumerate(cells):
                cell = QTableWidgetItem(text)
                cell.setToolTip(text)
                self.table.setItem(i, col, cell)
        self.table.setVisible(bool(self.items))
        self.empty.setVisible(not self.items)
        ids = [it.id for it in self.items]
        if selected is not None and selected.id in ids:
            self.table.selectRow(ids.index(selected.id))
        self._selected()

    def selected(self) -> VaultItem | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        idx = rows[0].row()
        return self.items[idx] if 0 <= idx < len(self.items) else None

    def select(self, item_id: str) -> None:
        for i, it in enumerate(self.items):
            if it.id == item_id:
                self.table.selectRow(i)

    def notice(self, text: str) -> None:
        self.status.setText(text)

    def _selected(self) -> None:
        it = self.selected()
        for b in (self.restore_button, self.restore_to_button, self.delete_button):
            b.setEnabled(it is not None)
        if it is None:
            self.details.setPlainText("")
            return
        lines = [
            f"Item {it.id}",
            f"Original path: {it.display_path}",
            f"SHA-256: {it.sha256}",
            f"Size: {it.size} bytes, mode {oct(it.mode & 0o7777)}",
            f"Quarantined: {local_time(it.quarantined_at)}",
            "",
            *it.explanation,
        ]
        self.details.setPlainText("\n".join(lines))

    def _restore(self, elsewhere: bool) -> None:
        it = self.selected()
        if it is None:
            return
        target = ""
        if elsewhere:
            target = self.pick_dir(self)
            if not target:
                return
        where = target or os.path.dirname(it.display_path)
        names = detection_names(it.detections) or it.verdict
        if self.confirm(
            self,
            "Restore this file?",
            f"Restore {it.name} into {where}?\n\nIt was detected as {names}. Restore it only "
            "if you are sure it is safe.",
        ):
            self.restore_requested.emit(it.id, target)

    def _delete(self) -> None:
        it = self.selected()
        if it is None:
            return
        if self.confirm(
            self,
            "Delete for good?",
            f"Delete {it.name} from the quarantine for good? This cannot be undone.",
        ):
            self.delete_requested.emit(it.id)
