"""Background operations: engine work on a QThreadPool, results back on the GUI thread.

Like Anki's ``QueryOp``/``CollectionOp``: :meth:`OpRunner.run` takes a plain function to run
in a worker thread and two callbacks, ``success(result)`` and ``failure(exc)``, which always
run on the GUI thread (the thread that owns the runner). A worker never touches a widget.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal, Slot

log = logging.getLogger(__name__)

T = TypeVar("T")
Success = Callable[[T], None]
Failure = Callable[[BaseException], None]


class _Relay(QObject):
    """Lives on the GUI thread; its signals are emitted from the worker (queued delivery)."""

    succeeded = Signal(object)
    failed = Signal(object)


class Op(QRunnable, Generic[T]):
    """One piece of background work. Created and started by :class:`OpRunner`."""

    def __init__(self, name: str, fn: Callable[[], T], relay: _Relay) -> None:
        super().__init__()
        self.name = name
        self._fn = fn
        self._relay = relay
        self.setAutoDelete(True)

    def run(self) -> None:  # worker thread
        try:
            result = self._fn()
        except BaseException as exc:  # reported on the GUI thread, never lost
            exc.__dict__.setdefault("aegis_traceback", traceback.format_exc())
            self._relay.failed.emit(exc)
        else:
            self._relay.succeeded.emit(result)


class OpRunner(QObject):
    """Runs ops on ``pool`` and calls back on the GUI thread. Keeps ops alive until done."""

    busy_changed = Signal(int)

    def __init__(self, pool: QThreadPool | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = pool or QThreadPool(self)
        self._inflight: set[_Relay] = set()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def run(
        self,
        fn: Callable[[], T],
        *,
        success: Success[T] | None = None,
        failure: Failure | None = None,
        name: str = "op",
    ) -> None:
        relay = _Relay(self)
        self._inflight.add(relay)

        @Slot(object)
        def on_success(result: Any) -> None:
            self._finish(relay)
            if success is not None:
                success(result)

        @Slot(object)
        def on_failure(exc: BaseException) -> None:
            self._finish(relay)
            if failure is not None:
                failure(exc)
            else:
                log.error(
                    "background op %s failed: %s\n%s",
                    name,
                    exc,
                    getattr(exc, "aegis_traceback", ""),
                )

        relay.succeeded.connect(on_success, Qt.ConnectionType.QueuedConnection)
        relay.failed.connect(on_failure, Qt.ConnectionType.QueuedConnection)
        self.pool.start(Op(name, fn, relay))
        self.busy_changed.emit(len(self._inflight))

    def _finish(self, relay: _Relay) -> None:
        self._inflight.discard(relay)
        relay.deleteLater()
        self.busy_changed.emit(len(self._inflight))

    def wait(self, msecs: int = -1) -> bool:
        """Wait for every running op (on quit and in tests)."""
        return self.pool.waitForDone(msecs)
