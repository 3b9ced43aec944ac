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


def _permissions(mode: int) -> str:
    """``rw-r--r--``: who could read, write or run the file."""
    bits = "rwxrwxrwx"
    return "".join(c if mode & (1 << (8 - i)) else "-" for i, c in enumerate(bits))


def _pick_dir(parent: QWidget) -> str:
    return QFileDialog.getExistingDirectory(parent, "Restore into which folder?")


class QuarantineWindow(QWidget):
    """Emits ``restore_requested(item_id, to_dir or "", allow)``, ``delete_requested(item_id)``
    and ``refresh_requested()``; the controller answers with :meth:`set_items` /
    :meth:`notice`. "Restore and allow" keeps the file (no scan acts on it again while its
    content is unchanged); "Restore only" puts it back and it is checked like any file."""

    restore_requested = Signal(str, str, bool)
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
        lay.addWidget(self.table, 3)
        self.empty = muted("The quarantine is empty.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.empty)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.details.setPlaceholderText("Select a file to see why it was quarantined.")
        lay.addWidget(self.details, 2)
        self.status = muted("")
        self.status.setObjectName("quarantine-status")
        self.status.setVisible(False)  # no empty band until there is something to say
        lay.addWidget(self.status)
        row = QHBoxLayout()
        self.restore_button = QPushButton("Restore and allow")
        self.restore_button.setObjectName("quarantine-restore")
        self.restore_button.setToolTip(
            "Put the file back and keep it: Aegis will not flag it again unless it changes."
        )
        self.restore_only_button = QPushButton("Restore only")
        self.restore_only_button.setObjectName("quarantine-restore-only")
        self.restore_only_button.setToolTip(
            "Put the file back without allowing it: the next scan will flag it again."
        )
        self.restore_to_button = QPushButton("Restore to…")
        self.restore_to_button.setToolTip("Put the file back into a folder you choose and keep it.")
        self.delete_button = QPushButton("Delete for good…")
        self.delete_button.setObjectName("quarantine-delete")
        self.refresh_button = QPushButton("Refresh")
        for b in self._item_buttons():
            row.addWidget(b)
        row.addStretch(1)
        row.addWidget(self.refresh_button)
        lay.addLayout(row)
        self.table.itemSelectionChanged.connect(self._selected)
        self.restore_button.clicked.connect(lambda: self._restore(elsewhere=False, allow=True))
        self.restore_only_button.clicked.connect(
            lambda: self._restore(elsewhere=False, allow=False)
        )
        self.restore_to_button.clicked.connect(lambda: self._restore(elsewhere=True, allow=True))
        self.delete_button.clicked.connect(self._delete)
        self.refresh_button.clicked.connect(self.refresh_requested)
        self.resize(860, 520)
        self.set_items([])

    def _notice(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    def set_items(self, items: list[VaultItem]) -> None:
        selected = self.selected()
        before = {it.id for it in self.items}
        if any(it.id not in before for it in items):
            self._notice("")  # a new item: the last notice is about something else
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
        self._notice(text)

    def _item_buttons(self) -> tuple[QPushButton, ...]:
        return (
            self.restore_button,
            self.restore_only_button,
            self.restore_to_button,
            self.delete_button,
        )

    def _selected(self) -> None:
        it = self.selected()
        for b in self._item_buttons():
            b.setEnabled(it is not None)
        if it is None:
            self.details.setPlainText("")
            return
        lines = [
            f"Was at: {it.display_path}",
            f"Quarantined: {local_time(it.quarantined_at)}",
            f"Size: {human_bytes(it.size)}",
            "",
            *it.explanation,
            "",
            "Technical details",
            f"  SHA-256: {it.sha256}",
            f"  Permissions: {_permissions(it.mode)}",
            f"  Quarantine ID: {it.id}",
        ]
        self.details.setPlainText("\n".join(lines))

    def _restore(self, *, elsewhere: bool, allow: bool) -> None:
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
        then = (
            "Aegis will not flag it again unless its content changes."
            if allow
            else "It is not allowed: the next scan will flag it again."
        )
        if self.confirm(
            self,
            "Restore and allow this file?" if allow else "Restore this file?",
            f"Restore {it.name} into {where}?\n\nIt was detected as {names}. Restore it only "
            f"if you are sure it is safe. {then}",
        ):
            self._notice("")
            self.restore_requested.emit(it.id, target, allow)

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
