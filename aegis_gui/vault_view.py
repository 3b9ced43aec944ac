"""The quarantine window's presenter: loads the vault's items and carries out restore and
delete in ops, reporting the outcome in the window."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QWidget

from aegis_engine import Engine

from . import actions
from .ops import OpRunner
from .windows.quarantine import QuarantineWindow

if TYPE_CHECKING:  # the vault module loads keyring and cryptography: only when used
    from aegis_engine.quarantine import VaultItem

ShowFn = Callable[[QWidget], object]


class VaultPresenter(QObject):
    def __init__(
        self, engine: Engine, runner: OpRunner, show: ShowFn, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._engine = engine
        self._runner = runner
        self._show = show
        self.window: QuarantineWindow | None = None

    def _window(self) -> QuarantineWindow:
        if self.window is None:
            w = QuarantineWindow()
            w.restore_requested.connect(self.restore)
            w.delete_requested.connect(self.delete)
            w.refresh_requested.connect(self.reload)
            self.window = w
        return self.window

    def show(self) -> QuarantineWindow:
        w = self._window()
        self.reload()
        self._show(w)
        return w

    def reload(self, then: Callable[[], None] | None = None) -> None:
        w = self._window()

        def loaded(items: list[VaultItem]) -> None:
            w.set_items(items)
            if then is not None:
                then()

        self._runner.run(
            lambda: actions.vault_items(self._engine),
            success=loaded,
            failure=lambda exc: w.notice(f"Cannot read the vault: {exc}"),
            name="vault-items",
        )

    def restore(self, item_id: str, to_dir: str) -> None:
        w = self._window()

        def done(path: str) -> None:
            self.reload(lambda: w.notice(f"Restored to {path}"))

        self._runner.run(
            lambda: actions.restore(self._engine, item_id, to_dir or None),
            success=done,
            failure=lambda exc: w.notice(f"Not restored: {exc}"),
            name="restore",
        )

    def delete(self, item_id: str) -> None:
        w = self._window()
        self._runner.run(
            lambda: actions.delete(self._engine, item_id),
            success=lambda _item: self.reload(lambda: w.notice("Deleted for good.")),
            failure=lambda exc: w.notice(f"Not deleted: {exc}"),
            name="delete",
        )
