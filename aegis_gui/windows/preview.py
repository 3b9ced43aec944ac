""" "Show what would be sent": the exact fields of one purpose, and whether it is on."""

from __future__ import annotations

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from aegis_engine.privacy import PURPOSES, ConsentStore

from .common import muted, setup_window


class SendPreviewDialog(QDialog):
    def __init__(
        self, store: ConsentStore, purpose_id: str | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        setup_window(self, "What would be sent")
        self.setObjectName("preview-dialog")
        self._store = store
        lay = QVBoxLayout(self)
        lay.addWidget(
            muted(
                "Nothing is sent while a purpose is off. When it is on, this is all that "
                "would be sent for it (example values; real ones are filled in at the time)."
            )
        )
        self.purpose = QComboBox()
        for p in PURPOSES:
            self.purpose.addItem(p.title, p.id)
        lay.addWidget(self.purpose)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        lay.addWidget(self.text, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.purpose.currentIndexChanged.connect(self._show)
        if purpose_id is not None:
            self.purpose.setCurrentIndex(max(0, self.purpose.findData(purpose_id)))
        self._show()
        self.resize(640, 420)

    def _show(self) -> None:
        pid = str(self.purpose.currentData())
        self.text.setPlainText(self._store.preview(pid).to_text())
