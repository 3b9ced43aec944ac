"""When long-running clients (the monitor, the tray app) send what waits in the outbox.

:func:`send_due` queues a due usage report and sends each OTLP purpose that is allowed and
has an endpoint; the sender's own rate limit (one send per purpose per hour, longer after a
``Retry-After``) decides whether anything goes now. Purposes that are off or have no
endpoint are skipped without a connection. :class:`SendTimer` calls it every
:data:`EVERY` seconds from one thread that stops with its client.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..errors import AegisError
from ..paths import AegisPaths

__all__ = ["EVERY", "SendTimer", "send_due"]

EVERY = 15 * 60.0


def send_due(paths: AegisPaths, warn: Callable[[str], None] | None = None) -> int:
    """Send what is due; returns how many records went out. Never raises."""
    from .consent import ConsentStore
    from .endpoints import CloudSettings
    from .sender import OTLP_PURPOSES, OutboxSender
    from .usage import queue_due_report

    sent = 0
    try:
        consent = ConsentStore.for_paths(paths, warn=warn)
        cloud = CloudSettings.for_paths(paths)
        wanted = [p for p in OTLP_PURPOSES if consent.is_granted(p) and cloud.endpoint(p)]
        if not wanted:
            return 0
        # The network layer (requests, TLS: ~20 MB) only when something may be sent.
        from .wire import transport_for

        queue_due_report(paths, consent)
        sender = OutboxSender.for_paths(
            paths, consent, lambda: transport_for(paths, consent), warn=warn
        )
        for pid in wanted:
            try:
                sent += sender.flush(pid).sent
            except AegisError as exc:
                if warn is not None:
                    warn(f"{pid} not sent now (kept in the outbox): {exc}")
    except Exception as exc:  # sending never stops protection
        if warn is not None:
            warn(f"queued reports not sent now: {exc}")
    return sent


class SendTimer:
    """Calls :func:`send_due` every ``every`` seconds until :meth:`stop`."""

    def __init__(
        self,
        paths: AegisPaths,
        warn: Callable[[str], None] | None = None,
        *,
        every: float = EVERY,
        first_after: float = 60.0,
    ) -> None:
        self.paths = paths
        self._warn = warn
        self.every = every
        self.first_after = first_after
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aegis-privacy-send", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        wait = self.first_after
        while not self._stop.wait(wait):
            send_due(self.paths, self._warn)
            wait = self.every

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
