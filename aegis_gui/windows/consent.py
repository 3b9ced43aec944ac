"""The first-run consent dialog: every purpose in plain words, exactly what it would send.
Update checks are on by default (no identifier) and come first, visible without scrolling;
everything else is off. The heading and text say so (privacy.DEFAULTS_SENTENCE)."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QLabel,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from aegis_engine.privacy import DEFAULTS_SENTENCE, ConsentState, ConsentStore

from ..wording import field_names
from .common import heading, muted, setup_window
from .settings import DECOYS_TEXT


def purpose_box(state: ConsentState, checked: bool) -> tuple[QFrame, QCheckBox]:
    """A framed block: checkbox with the title, what it is for, what it sends."""
    p = state.purpose
    frame = QFrame()
    frame.setFrameShape(QFrame.Shape.StyledPanel)
    frame.setObjectName(f"purpose-{p.id}")
    lay = QVBoxLayout(frame)
    lay.setSpacing(4)
    title = p.title + (" (on by default: carries no identifier)" if p.default else "")
    box = QCheckBox(title)
    box.setObjectName(f"consent-{p.id}")
    box.setChecked(checked)
    font = box.font()
    font.setBold(True)
    box.setFont(font)
    lay.addWidget(box)
    summary = QLabel(p.summary)
    summary.setWordWrap(True)
    lay.addWidget(summary)
    sends = "<br>".join(f"• {html.escape(f.description)}" for f in p.sends)
    sent = QLabel(f"Would send, and nothing else:<br>{sends}")
    sent.setObjectName(f"sends-{p.id}")
    sent.setWordWrap(True)
    sent.setTextFormat(Qt.TextFormat.RichText)
    sent.setToolTip(f"Data fields: {field_names(p)}")  # for those who want the names
    lay.addWidget(sent)
    lay.addWidget(muted(f"Never sends: {p.never_sends}."))
    return frame, box


class ConsentDialog(QDialog):
    """Saves the choices to ``store`` when accepted; closing it keeps everything as it was
    (and it comes back on the next start). With ``decoys`` (the current setting) it also
    tells what the ransomware shield's decoy files are and emits ``decoys_chosen(bool)``."""

    decoys_chosen = Signal(bool)

    def __init__(
        self, store: ConsentStore, parent: QWidget | None = None, *, decoys: bool | None = None
    ) -> None:
        super().__init__(parent)
        setup_window(self, "Your privacy choices")
        self.setObjectName("consent-dialog")
        self._store = store
        self.boxes: dict[str, QCheckBox] = {}
        outer = QVBoxLayout(self)
        outer.addWidget(heading("Only update checks are on: nothing else leaves this computer"))
        outer.addWidget(
            muted(
                "Aegis scans, decides and quarantines entirely on this computer. "
                f"{DEFAULTS_SENTENCE} Below is everything it could send for you, each for "
                "one purpose, with exactly what would be sent. You can change this at any "
                "time in Settings ▸ Privacy, or with the command aegis consent."
            )
        )
        inner = QWidget()
        column = QVBoxLayout(inner)
        for state in store.states():
            frame, box = purpose_box(state, state.granted)
            self.boxes[state.purpose.id] = box
            column.addWidget(frame)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(inner)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        outer.addWidget(scroll, 1)
        self.decoys: QCheckBox | None = None
        if decoys is not None:
            frame = QFrame()
            frame.setFrameShape(QFrame.Shape.StyledPanel)
            frame.setObjectName("decoys")
            flay = QVBoxLayout(frame)
            self.decoys = QCheckBox("Plant hidden decoy files for the ransomware shield")
            self.decoys.setObjectName("consent-decoys")
            self.decoys.setChecked(decoys)
            bold = self.decoys.font()
            bold.setBold(True)
            self.decoys.setFont(bold)
            flay.addWidget(self.decoys)
            text = QLabel(DECOYS_TEXT + " Nothing about them leaves this computer.")
            text.setWordWrap(True)
            flay.addWidget(text)
            outer.addWidget(frame)
        buttons = QDialogButtonBox()
        self.save_button = buttons.addButton(
            "Save my choices", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.save_button.setDefault(True)
        buttons.accepted.connect(self.accept)
        outer.addWidget(buttons)
        self.resize(620, 640)

    def choices(self) -> dict[str, bool]:
        return {pid: box.isChecked() for pid, box in self.boxes.items()}

    def accept(self) -> None:
        self._store.set_many(self.choices(), reviewed=True)
        if self.decoys is not None:
            self.decoys_chosen.emit(self.decoys.isChecked())
        super().accept()
