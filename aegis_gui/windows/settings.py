"""Settings: real-time protection and its folders, exclusions, scheduled scans, privacy
(the same consent store as ``aegis consent``), update server and proxy."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace

from PySide6.QtCore import QTime, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QTimeEdit,
    QVBoxLayout,
    QWidget,
)

from aegis_engine.errors import AegisError
from aegis_engine.privacy import ConsentStore

from ..preferences import Preferences
from ..schedule import WEEKDAYS, Schedule
from ..wording import field_names, plain_sends
from .common import muted, setup_window

PickFolder = Callable[[QWidget], str]

DECOYS_TEXT = (
    "Aegis puts one hidden document, named like .~invoice-1a2b3c.pdf, in each shielded "
    "folder. No program has a reason to change it; one that does is stopped as ransomware. "
    "The decoys are removed when protection stops, and scans never count or report them."
)


def _home_short(path: str) -> str:
    home = os.path.expanduser("~").rstrip("/")
    return "~" + path[len(home) :] if path == home or path.startswith(home + "/") else path


AskText = Callable[[QWidget, str, str], str]


def _pick_folder(parent: QWidget) -> str:
    return QFileDialog.getExistingDirectory(parent, "Choose a folder")


def _ask_text(parent: QWidget, title: str, label: str) -> str:
    text, ok = QInputDialog.getText(parent, title, label)
    return text.strip() if ok else ""


class EditableList(QWidget):
    """A list with Add / Remove buttons."""

    def __init__(self, add: Callable[[], str], empty: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._add_fn = add
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.list = QListWidget()
        self.list.setMinimumHeight(90)
        self.empty = muted(empty)
        lay.addWidget(self.list, 1)
        lay.addWidget(self.empty)
        row = QHBoxLayout()
        self.add_button = QPushButton("Add…")
        self.remove_button = QPushButton("Remove")
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        row.addStretch(1)
        lay.addLayout(row)
        self.add_button.clicked.connect(self._add)
        self.remove_button.clicked.connect(self._remove)
        self.list.currentRowChanged.connect(self._update)
        self._update()

    def set_items(self, items: tuple[str, ...] | list[str]) -> None:
        self.list.clear()
        self.list.addItems(list(items))
        self._update()

    def items(self) -> tuple[str, ...]:
        return tuple(self.list.item(i).text() for i in range(self.list.count()))

    def _add(self) -> None:
        value = self._add_fn()
        if value and value not in self.items():
            self.list.addItem(value)
            self._update()

    def _remove(self) -> None:
        row = self.list.currentRow()
        if row >= 0:
            self.list.takeItem(row)
            self._update()

    def _update(self) -> None:
        self.empty.setVisible(self.list.count() == 0)
        self.remove_button.setEnabled(self.list.currentRow() >= 0)


class SettingsDialog(QDialog):
    """Emits ``saved(Preferences)`` after the consent choices are stored; the controller
    writes the settings file and applies them."""

    saved = Signal(object)
    preview_requested = Signal(str)

    def __init__(
        self,
        prefs: Preferences,
        consent: ConsentStore,
        default_folders: list[str],
        *,
        pick_folder: PickFolder = _pick_folder,
        ask_text: AskText = _ask_text,
        can_autostart: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        setup_window(self, "Settings")
        self.setObjectName("settings-dialog")
        self._prefs = prefs
        self._consent = consent
        self._can_autostart = can_autostart
        self.tabs = QTabWidget()
        self.tabs.addTab(self._protection_tab(default_folders, pick_folder), "Protection")
        self.tabs.addTab(self._exclusions_tab(pick_folder, ask_text), "Exclusions")
        self.tabs.addTab(self._schedule_tab(), "Scheduled scans")
        self.tabs.addTab(self._privacy_tab(), "Privacy")
        self.tabs.addTab(self._updates_tab(), "Updates")
        lay = QVBoxLayout(self)
        lay.addWidget(self.tabs, 1)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        self.load(prefs)
        self.resize(640, 520)

    # -- tabs ----------------------------------------------------------------------------------
    def _protection_tab(self, defaults: list[str], pick: PickFolder) -> QWidget:
        tab = QWidget()
        lay = QVBoxLayout(tab)
        self.autostart = QCheckBox("Start Aegis when I log in")
        self.autostart.setObjectName("autostart")
        self.autostart.setVisible(self._can_autostart)
        lay.addWidget(self.autostart)
        self.realtime = QCheckBox("Real-time protection: scan files as they are written")
        lay.addWidget(self.realtime)
        lay.addWidget(
            muted(
                "New and changed files in the watched folders are scanned as soon as they are "
                "written, and the ransomware shield guards Documents, Desktop and Pictures."
            )
        )
        usual = "\n".join(f"  • {_home_short(f)}" for f in defaults) or "  (none found)"
        self.folders = EditableList(
            lambda: pick(self), f"No folders chosen, so Aegis watches the usual ones:\n{usual}"
        )
        self.folders.list.setMinimumHeight(70)
        self.folders.list.setMaximumHeight(110)
        lay.addWidget(QLabel("Watched folders"))
        lay.addWidget(self.folders)
        self.decoys = QCheckBox("Plant hidden decoy files for the ransomware shield")
        self.decoys.setObjectName("settings-decoys")
        lay.addWidget(self.decoys)
        lay.addWidget(muted(DECOYS_TEXT))
        form = QFormLayout()
        self.prompt_timeout = QSpinBox()
        self.prompt_timeout.setRange(10, 3600)
        self.prompt_timeout.setSuffix(" seconds")
        form.addRow("Time to answer an alert", self.prompt_timeout)
        lay.addLayout(form)
        lay.addWidget(
            muted(
                "If nobody answers an alert in time, your policy decides (files found by a "
                "virus signature are quarantined)."
            )
        )
        lay.addStretch(1)
        return tab

    def _exclusions_tab(self, pick: PickFolder, ask: AskText) -> QWidget:
        tab = QWidget()
        lay = QVBoxLayout(tab)
        lay.addWidget(
            muted(
                "Excluded files are never reported. Paths may use wildcards: "
                "/home/me/builds/* covers everything below that folder."
            )
        )
        lay.addWidget(QLabel("Excluded paths and patterns"))

        def add_path() -> str:
            folder = pick(self)
            return f"{folder.rstrip('/')}/*" if folder else ""

        self.exclude_paths = EditableList(add_path, "No excluded paths.")
        lay.addWidget(self.exclude_paths, 1)
        lay.addWidget(QLabel("Allowed files (SHA-256)"))
        self.exclude_sha256 = EditableList(
            lambda: ask(self, "Allow a file", "SHA-256 of the file (64 hexadecimal characters):"),
            "No allowed files. Choosing Allow on an alert adds the file here.",
        )
        lay.addWidget(self.exclude_sha256, 1)
        return tab

    def _schedule_tab(self) -> QWidget:
        tab = QWidget()
        form = QFormLayout(tab)
        self.schedule_on = QCheckBox("Scan on a schedule")
        form.addRow(self.schedule_on)
        self.frequency = QComboBox()
        self.frequency.addItem("Every day", "daily")
        self.frequency.addItem("Every week", "weekly")
        form.addRow("How often", self.frequency)
        self.weekday = QComboBox()
        for day in WEEKDAYS:
            self.weekday.addItem(day.title(), day)
        form.addRow("Day", self.weekday)
        self.time = QTimeEdit()
        self.time.setDisplayFormat("HH:mm")
        form.addRow("At", self.time)
        self.kind = QComboBox()
        self.kind.addItem("Quick scan (watched folders)", "quick")
        self.kind.addItem("Full scan (your home folder)", "full")
        form.addRow("What", self.kind)
        form.addRow(muted("Scheduled scans run while the tray app is running."))
        self.schedule_on.toggled.connect(self._schedule_enabled)
        self.frequency.currentIndexChanged.connect(self._schedule_enabled)
        return tab

    def _privacy_tab(self) -> QWidget:
        tab = QWidget()
        lay = QVBoxLayout(tab)
        lay.addWidget(
            muted(
                "Nothing leaves this computer for a purpose that is off. These are the same "
                "choices as the command aegis consent."
            )
        )
        self.consent_boxes: dict[str, QCheckBox] = {}
        for state in self._consent.states():
            p = state.purpose
            row = QHBoxLayout()
            label = p.title + (" (on by default: no identifier)" if p.default else "")
            box = QCheckBox(label)
            box.setObjectName(f"consent-{p.id}")
            box.setToolTip(f"{p.summary}\nData fields: {field_names(p)}")
            self.consent_boxes[p.id] = box
            row.addWidget(box, 1)
            show = QPushButton("Show what would be sent")
            show.setObjectName(f"preview-{p.id}")
            show.clicked.connect(lambda _=False, pid=p.id: self.preview_requested.emit(pid))
            row.addWidget(show)
            lay.addLayout(row)
            where = f" to {state.endpoint}" if state.endpoint else ""
            if state.endpoint_changed:
                where += " (changed since you allowed it: allow it again)"
            sends = muted(f"Sends: {plain_sends(p)}{where}.")
            sends.setObjectName(f"sends-{p.id}")
            sends.setToolTip(f"Data fields: {field_names(p)} (Show what would be sent: each one)")
            sends.setContentsMargins(22, 0, 0, 6)
            lay.addWidget(sends)
        lay.addStretch(1)
        return tab

    def _updates_tab(self) -> QWidget:
        tab = QWidget()
        form = QFormLayout(tab)
        self.server = QLineEdit()
        self.server.setPlaceholderText("built-in (leave empty)")
        form.addRow("Update server", self.server)
        self.proxy = QLineEdit()
        self.proxy.setPlaceholderText("none (e.g. http://proxy.example:3128)")
        form.addRow("Proxy", self.proxy)
        self.app_updates = QComboBox()
        for label, value in (
            ("Download them and apply at the next start", "stage"),
            ("Only tell me when one is ready", "check"),
            ("Do not look for them", "off"),
        ):
            self.app_updates.addItem(label, value)
        form.addRow("New versions of Aegis", self.app_updates)
        form.addRow(
            muted(
                "Update checks send only the Aegis and signature versions; turn them off "
                "under Privacy."
            )
        )
        return tab

    # -- values --------------------------------------------------------------------------------
    def _schedule_enabled(self) -> None:
        on = self.schedule_on.isChecked()
        for w in (self.frequency, self.time, self.kind):
            w.setEnabled(on)
        self.weekday.setEnabled(on and self.frequency.currentData() == "weekly")

    def load(self, prefs: Preferences) -> None:
        self.autostart.setChecked(prefs.autostart)
        self.realtime.setChecked(prefs.realtime)
        self.decoys.setChecked(prefs.decoys)
        self.folders.set_items(prefs.folders)
        self.exclude_paths.set_items(prefs.exclude_paths)
        self.exclude_sha256.set_items(prefs.exclude_sha256)
        s = prefs.schedule
        self.schedule_on.setChecked(s.enabled)
        self.frequency.setCurrentIndex(max(0, self.frequency.findData(s.frequency)))
        self.weekday.setCurrentIndex(max(0, self.weekday.findData(s.weekday)))
        hour, minute = (int(x) for x in s.time.split(":")) if ":" in s.time else (12, 0)
        self.time.setTime(QTime(hour, minute))
        self.kind.setCurrentIndex(max(0, self.kind.findData(s.kind)))
        self.server.setText(prefs.update_server)
        self.proxy.setText(prefs.proxy)
        self.app_updates.setCurrentIndex(max(0, self.app_updates.findData(prefs.app_updates)))
        self.prompt_timeout.setValue(prefs.prompt_timeout)
        for state in self._consent.states():
            self.consent_boxes[state.purpose.id].setChecked(state.granted)
        self._schedule_enabled()

    def preferences(self) -> Preferences:
        return replace(
            self._prefs,
            autostart=self.autostart.isChecked() if self._can_autostart else self._prefs.autostart,
            realtime=self.realtime.isChecked(),
            decoys=self.decoys.isChecked(),
            folders=self.folders.items(),
            exclude_paths=self.exclude_paths.items(),
            exclude_sha256=self.exclude_sha256.items(),
            schedule=Schedule(
                enabled=self.schedule_on.isChecked(),
                frequency=str(self.frequency.currentData()),
                weekday=str(self.weekday.currentData()),
                time=self.time.time().toString("HH:mm"),
                kind=str(self.kind.currentData()),
            ),
            update_server=self.server.text().strip(),
            proxy=self.proxy.text().strip(),
            app_updates=str(self.app_updates.currentData()),
            prompt_timeout=self.prompt_timeout.value(),
        )

    def consent_choices(self) -> dict[str, bool]:
        return {pid: box.isChecked() for pid, box in self.consent_boxes.items()}

    def accept(self) -> None:
        prefs = self.preferences()
        try:
            prefs.validate()
            self._consent.set_many(self.consent_choices(), reviewed=True)
        except AegisError as exc:
            QMessageBox.warning(self, "Settings not saved", str(exc))
            return
        self.saved.emit(prefs)
        super().accept()
