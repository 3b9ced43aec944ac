"""A token bucket per host: at most ``burst`` requests at once, refilled at ``rate`` per second."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["HostRateLimiter"]


class HostRateLimiter:
    """Blocks a caller until its host has a token. Thread-safe; clock and sleep injectable."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = max(rate, 1e-6)
        self.burst = max(1, burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # host -> (tokens, last time)

    def _take(self, host: str) -> float:
        """Take a token now if there is one (0.0), else the wait until there is."""
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(host, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[host] = (tokens - 1.0, now)
                return 0.0
            self._buckets[host] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def acquire(self, host: str) -> float:
        """Wait for a token for ``host``; returns the seconds waited."""
        waited = 0.0
        while True:
            wait = self._take(host)
            if wait <= 0.0:
                return waited
            self._sleep(wait)
            waited += wait
