"""Bits shared by the windows: headings, confirmations, eliding labels, table setup."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QMargins, QRect, QSize, Qt
from PySide6.QtGui import QFont, QFontMetrics, QGuiApplication, QPalette, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QMessageBox,
    QTableWidget,
    QWidget,
)

from ..icons import app_icon

Confirm = Callable[[QWidget, str, str], bool]


def ask_yes_no(parent: QWidget, title: str, text: str) -> bool:
    box = QMessageBox(QMessageBox.Icon.Question, title, text, parent=parent)
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    return box.exec() == QMessageBox.StandardButton.Yes


def heading(text: str, scale: float = 1.35) -> QLabel:
    label = QLabel(text)
    font = QFont(label.font())
    font.setPointSizeF(font.pointSizeF() * scale)
    font.setBold(True)
    label.setFont(font)
    return label


def muted(text: str) -> QLabel:
    """A wrapped label in the palette's secondary text colour."""
    label = QLabel(text)
    label.setWordWrap(True)
    pal = label.palette()
    pal.setColor(QPalette.ColorRole.WindowText, pal.color(QPalette.ColorRole.PlaceholderText))
    label.setPalette(pal)
    return label


def setup_window(widget: QWidget, title: str) -> None:
    widget.setWindowTitle(f"{title} — Aegis")
    widget.setWindowIcon(app_icon())


def setup_table(
    table: QTableWidget, headers: list[str], stretch: int, widths: dict[int, int] | None = None
) -> None:
    """Rows selectable, not editable; column ``stretch`` takes the spare width, columns in
    ``widths`` start at that width (the user may resize them), the others fit their text."""
    table.setColumnCount(len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    table.setAlternatingRowColors(True)
    table.setWordWrap(False)
    table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    header = table.horizontalHeader()
    widths = widths or {}
    for col in range(len(headers)):
        if col == stretch:
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Stretch)
        elif col in widths:
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(col, widths[col])
        else:
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)


def elide_path(metrics: QFontMetrics, text: str, width: int) -> str:
    """``text`` (a path, maybe after a prefix such as "Scanned: ") cut to ``width`` pixels
    so that its file name stays whole: the folders between are elided in the middle
    (``Scanned: /home/me/Doc…/2026/report.pdf``). A file name too long for the width
    keeps its start and its end."""
    if metrics.horizontalAdvance(text) <= width:
        return text
    cut = text.rfind("/")
    if 0 < cut < len(text) - 1:
        name = text[cut:]
        room = width - metrics.horizontalAdvance(name)
        if room >= metrics.horizontalAdvance("…/…"):
            head = metrics.elidedText(text[:cut], Qt.TextElideMode.ElideMiddle, room)
            return head + name
    return metrics.elidedText(text, Qt.TextElideMode.ElideMiddle, width)


WINDOW_FRAME = QMargins(4, 32, 4, 4)
"""What a window manager adds around a window not yet shown (title bar, borders)."""


def fit_to_screen(window: QWidget, available: QRect | None = None) -> None:
    """Make a top-level ``window`` fit the screen's available area (``available``, by default
    its screen's ``availableGeometry()``: without panels and docks), frame included:
    never taller or wider than it, and moved inside it when it would stick out."""
    if available is None:
        screen = window.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return
        available = screen.availableGeometry()
    geo, frame = window.geometry(), window.frameGeometry()
    if window.isVisible() and frame.height() > geo.height():
        margins = QMargins(
            geo.left() - frame.left(),
            geo.top() - frame.top(),
            frame.right() - geo.right(),
            frame.bottom() - geo.bottom(),
        )
    else:
        margins = WINDOW_FRAME
    room_w = available.width() - margins.left() - margins.right()
    room_h = available.height() - margins.top() - margins.bottom()
    width, height = min(window.width(), room_w), min(window.height(), room_h)
    if (width, height) != (window.width(), window.height()):
        window.resize(width, height)
    # a top-level window's pos() and move() are its frame's top-left corner
    outer = QRect(
        window.pos(),
        QSize(width + margins.left() + margins.right(), height + margins.top() + margins.bottom()),
    )
    if not window.isVisible() and not window.testAttribute(Qt.WidgetAttribute.WA_Moved):
        outer.moveCenter(available.center())  # first showing: centred on the screen
    elif available.contains(outer):
        return
    x = max(available.left(), min(outer.left(), available.right() + 1 - outer.width()))
    y = max(available.top(), min(outer.top(), available.bottom() + 1 - outer.height()))
    window.move(x, y)


class ElidedLabel(QLabel):
    """A one-line label that elides its text instead of growing the window: a path keeps
    its file name (:func:`elide_path`); the whole text is in the tooltip. Re-elided on
    every resize."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = text
        self.setMinimumWidth(50)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setText(text)

    def setText(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self._elide()

    def full_text(self) -> str:
        return self._full

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        metrics = QFontMetrics(self.font())
        room = max(10, self.contentsRect().width())
        super().setText(elide_path(metrics, self._full, room))
