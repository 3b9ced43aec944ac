""" "Show what would be sent": the exact fields of one purpose and whether it is on; with the
profile's paths also exactly what would be sent next (request and body, byte for byte before
gzip) and the log of what was sent (the same views as ``aegis privacy preview|sent``)."""

from __future__ import annotations

import json

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QPlainTextEdit,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from aegis_engine.paths import AegisPaths
from aegis_engine.privacy import PURPOSES, ConsentStore

from .common import muted, setup_window


class SendPreviewDialog(QDialog):
    def __init__(
        self,
        store: ConsentStore,
        purpose_id: str | None = None,
        parent: QWidget | None = None,
        *,
        paths: AegisPaths | None = None,
    ) -> None:
        super().__init__(parent)
        setup_window(self, "What would be sent")
        self.setObjectName("preview-dialog")
        self._store = store
        self._paths = paths
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
        self.text = self._text_view()
        self.next_text = self._text_view()
        self.sent_text = self._text_view()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.text, "What it sends")
        if paths is not None:
            self.tabs.addTab(self.next_text, "Next to be sent")
            self.tabs.addTab(self.sent_text, "Sent")
        lay.addWidget(self.tabs, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.purpose.currentIndexChanged.connect(self._show)
        if purpose_id is not None:
            self.purpose.setCurrentIndex(max(0, self.purpose.findData(purpose_id)))
        self._show()
        self.resize(640, 420)

    @staticmethod
    def _text_view() -> QPlainTextEdit:
        view = QPlainTextEdit()
        view.setReadOnly(True)
        view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        return view

    def _show(self) -> None:
        pid = str(self.purpose.currentData())
        self.text.setPlainText(self._store.preview(pid).to_text())
        if self._paths is None:
            return
        from aegis_engine.privacy.preview import build_preview
        from aegis_engine.privacy.sentlog import SentLog

        view = next(v for v in build_preview(self._paths, self._store) if v["id"] == pid)
        lines = [
            f"{'ON' if view['allowed'] else 'OFF'}: {view['note']}",
            f"Endpoint: {view['endpoint'] or '(none configured: nothing can be sent)'}",
            "",
        ]
        for req in view["next"]:
            lines.append(f"{req['method']} {req['url']}")
            lines.extend(f"{k}: {v}" for k, v in req["headers"].items())
            if req.get("body") is not None:
                lines += ["", req["body"]]
            lines.append("")
        if not view["next"]:
            lines.append("Nothing is waiting to be sent.")
        self.next_text.setPlainText("\n".join(lines))
        sent = [e for e in SentLog.for_paths(self._paths).entries() if e.purpose == pid]
        if not sent:
            self.sent_text.setPlainText("Nothing has been sent for this purpose.")
            return
        out = []
        for e in reversed(sent):
            out.append(f"{e.time}  {e.method} {e.endpoint}  {e.bytes} bytes  HTTP {e.status}")
            out.append(json.dumps(e.payload, ensure_ascii=False, indent=1))
            out.append("")
        self.sent_text.setPlainText("\n".join(out))
