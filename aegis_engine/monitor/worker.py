"""The thread plumbing the monitor's parts share: one named, non-daemon thread each."""

from __future__ import annotations

import threading


class Worker:
    """Runs ``_run`` on one thread named ``thread_name``; subclasses define ``stop``.

    Not a daemon thread: the monitor's ``stop()`` joins every worker, so nothing is left
    half-written when the process exits.
    """

    thread_name = "aegis-worker"
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=False)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def threads(self) -> list[threading.Thread]:
        return [self._thread] if self._thread is not None else []
