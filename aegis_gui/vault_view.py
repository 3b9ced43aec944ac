"""The quarantine window's presenter: loads the vault's items and carries out restore and
delete in ops, reporting the outcome in the window."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from aegis_engine import Engine
from aegis_engine.display import display_path
from aegis_engine.response import RestoreResult

from .change_watch import ChangeWatch
from .ops import OpRunner

if TYPE_CHECKING:  # the vault module loads keyring and cryptography: only when used
    from aegis_engine.quarantine import VaultItem

    from .windows.quarantine import QuarantineWindow  # imported when first opened

ShowFn = Callable[[QWidget], object]


class VaultPresenter(QObject):
    """``changed()`` after a restore or delete done here (other views follow along)."""

    changed = Signal()

    def __init__(
        self, engine: Engine, runner: OpRunner, show: ShowFn, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._engine = engine
        self._runner = runner
        self._show = show
        self.window: QuarantineWindow | None = None
        vault = engine.paths.quarantine_dir
        self.watch = ChangeWatch(  # items added or removed by another process (CLI, monitor)
            [vault / "items", vault / "journal"],
            alive=lambda: self.window is not None and self.window.isVisible(),
            parent=self,
        )
        self.watch.changed.connect(self.reload)

    def _window(self) -> QuarantineWindow:
        if self.window is None:
            from .windows.quarantine import QuarantineWindow

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
        self.watch.start()
        return w

    def reload(self, then: Callable[[], None] | None = None) -> None:
        w = self._window()

        def loaded(items: list[VaultItem]) -> None:
            w.set_items(items)
            if then is not None:
                then()

        self._runner.run(
            lambda: self._engine.quarantine.items(),
            success=loaded,
            failure=lambda exc: w.notice(f"Cannot read the vault: {exc}"),
            name="vault-items",
        )

    def restore(self, item_id: str, to_dir: str, allow: bool = True) -> None:
        """Restore an item; "Restore and allow" (the default) also keeps it (path and
        SHA-256): no scan acts on it again unless it changes. "Restore only" does not."""
        w = self._window()

        def done(result: RestoreResult) -> None:
            text = f"Restored to {display_path(result.path)}."
            if result.allowed:
                text += " Aegis will not act on it again unless its content changes."
            elif not allow:
                text += " It is not allowed: a scan will flag it again."
            elif result.allow_error:
                text += f" It could not be marked as kept: {result.allow_error}"
            self.reload(lambda: w.notice(text))
            self.changed.emit()

        self._runner.run(
            lambda: self._engine.outcomes.restore(item_id, to_dir=to_dir or None, allow=allow),
            success=done,
            failure=lambda exc: w.notice(f"Not restored: {exc}"),
            name="restore",
        )

    def _deleted(self, w: QuarantineWindow) -> None:
        self.reload(lambda: w.notice("Deleted for good."))
        self.changed.emit()

    def delete(self, item_id: str) -> None:
        w = self._window()
        self._runner.run(
            lambda: self._engine.outcomes.delete(item_id).item,
            success=lambda _item: self._deleted(w),
            failure=lambda exc: w.notice(f"Not deleted: {exc}"),
            name="delete",
        )
