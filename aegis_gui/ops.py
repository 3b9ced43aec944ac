"""Background operations: engine work on a QThreadPool, results back on the GUI thread.

Like Anki's ``QueryOp``/``CollectionOp``: :meth:`OpRunner.run` takes a plain function to run
in a worker thread and two callbacks, ``success(result)`` and ``failure(exc)``, which always
run on the GUI thread (the thread that owns the runner). A worker never touches a widget.

Lifetime rules (the cause of a former random segfault in the test suite): no Qt object is
created or deleted per op, and nothing a worker touches can be deleted under it. Each runner
owns ONE relay QObject, created on the GUI thread without a Qt parent and referenced by every
running job, so it outlives them; workers only ``emit`` on it. The work itself is a plain
Python callable handed to ``QThreadPool.start`` (no Python ``QRunnable`` subclass, whose
C++ half Qt deletes on the worker thread while Python may still hold its wrapper), and the
callbacks wait in a plain dict keyed by op id until the queued signal reaches
:meth:`OpRunner._deliver` on the GUI thread. Per-op ``_Relay`` children connected to
closures, deleted with ``deleteLater`` and then with the runner, crashed PySide6 6.x at
random (reproduced by ``bench/gui_ops_lifetime.py``).
"""

from __future__ import annotations

import itertools
import logging
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Qt, QThreadPool, Signal, Slot

log = logging.getLogger(__name__)

T = TypeVar("T")
Success = Callable[[T], None]
Failure = Callable[[BaseException], None]


class _Relay(QObject):
    """Lives on the GUI thread; workers emit ``done`` on it (queued delivery)."""

    done = Signal(int, bool, object)
    """(op id, succeeded, result or exception)"""


class OpRunner(QObject):
    """Runs ops on ``pool`` and calls back on the GUI thread."""

    busy_changed = Signal(int)

    def __init__(self, pool: QThreadPool | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = pool or QThreadPool(self)
        # No Qt parent: the Python wrapper owns it, and running jobs hold a reference.
        self._relay = _Relay()
        self._relay.done.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, Success[Any] | None, Failure | None]] = {}

    @property
    def inflight(self) -> int:
        return len(self._pending)

    def run(
        self,
        fn: Callable[[], T],
        *,
        success: Success[T] | None = None,
        failure: Failure | None = None,
        name: str = "op",
    ) -> None:
        op_id = next(self._ids)
        self._pending[op_id] = (name, success, failure)
        relay = self._relay

        def job() -> None:  # worker thread
            try:
                result = fn()
            except BaseException as exc:  # reported on the GUI thread, never lost
                exc.__dict__.setdefault("aegis_traceback", traceback.format_exc())
                relay.done.emit(op_id, False, exc)
            else:
                relay.done.emit(op_id, True, result)

        self.pool.start(job)
        self.busy_changed.emit(len(self._pending))

    @Slot(int, bool, object)
    def _deliver(self, op_id: int, ok: bool, payload: Any) -> None:  # GUI thread
        entry = self._pending.pop(op_id, None)
        self.busy_changed.emit(len(self._pending))
        if entry is None:
            return
        name, success, failure = entry
        if ok:
            if success is not None:
                success(payload)
        elif failure is not None:
            failure(payload)
        else:
            log.error(
                "background op %s failed: %s\n%s",
                name,
                payload,
                getattr(payload, "aegis_traceback", ""),
            )

    def wait(self, msecs: int = -1) -> bool:
        """Wait for every running op (on quit and in tests)."""
        return self.pool.waitForDone(msecs)
