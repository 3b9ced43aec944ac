"""Per-target extraction budget and the unpacked-member type shared by scanner and unpackers."""

from __future__ import annotations

import contextlib
import mmap
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import ScanLimits
from ..detectors.base import Buffer
from ..display import human_size
from ..errors import LimitExceeded


class ExtractionBudget:
    """Counts what one top-level target has extracted; raises LimitExceeded past a limit."""

    def __init__(self, limits: ScanLimits, *, clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self._clock = clock
        self.started = clock()
        self.bytes_extracted = 0
        self.files_extracted = 0

    def check_time(self) -> None:
        if self.limits.max_scan_time and self._clock() - self.started > self.limits.max_scan_time:
            raise LimitExceeded(
                "max-scan-time", f"target took longer than {self.limits.max_scan_time:g} s"
            )

    def add_file(self) -> None:
        self.files_extracted += 1
        if self.limits.max_files and self.files_extracted > self.limits.max_files:
            raise LimitExceeded(
                "max-files", f"more than {self.limits.max_files} members in one target"
            )

    def add_bytes(self, n: int) -> None:
        self.bytes_extracted += n
        if self.limits.max_scan_size and self.bytes_extracted > self.limits.max_scan_size:
            raise LimitExceeded(
                "max-scan-size",
                f"more than {human_size(self.limits.max_scan_size)} extracted from one target",
            )
        self.check_time()

    def time_left(self) -> float | None:
        """Seconds left of max-scan-time (None when there is no time limit)."""
        if not self.limits.max_scan_time:
            return None
        return self.limits.max_scan_time - (self._clock() - self.started)

    @property
    def remaining_bytes(self) -> int:
        return max(0, self.limits.max_scan_size - self.bytes_extracted)


@dataclass
class Member:
    """One member unpacked from a container.

    ``data`` holds the whole member (bytes, or an mmap of a private temp file for large ones).
    When ``problem`` is set the member was not extracted (e.g. larger than max-file-size) and
    ``data`` is empty: the scanner reports it as incomplete with that reason.
    Call :meth:`close` when done (the scanner does).
    """

    name: str
    data: Buffer
    size: int
    problem: str | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def close(self) -> None:
        if isinstance(self.data, mmap.mmap):
            with contextlib.suppress(BufferError, ValueError):
                self.data.close()
        while self._closers:
            with contextlib.suppress(OSError):
                self._closers.pop()()
