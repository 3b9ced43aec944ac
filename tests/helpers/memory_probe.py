"""A test-only detector plug-in that records how many large files are in scan workers at
once (``$AEGIS_TEST_DETECTORS=helpers.memory_probe:make_probe``, ``$AEGIS_TEST_PROBE_DIR``).

For each file on disk named ``small-*`` or ``large-*`` it leaves a mark in the probe folder:
``small/NAME`` for a small file; for a large one (``worker_pool.LARGE_FILE_BYTES`` or
more) ``large-NAME`` while it is being scanned. A large file stays in its detector until
another worker has scanned a small file meanwhile (or a few seconds have passed, or every
small file is done; the first small file waits a few seconds for a large one to be in a
worker), then appends to ``log`` one line: ``overlap`` when another large file was in a
worker at the same time, ``flowed`` when small files were scanned meanwhile, ``waited``
otherwise.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

SPEC = "helpers.memory_probe:make_probe"
DIR_ENV = "AEGIS_TEST_PROBE_DIR"
SMALL_TOTAL_ENV = "AEGIS_TEST_PROBE_SMALL"
HOLD = 0.3
"""Seconds a large file stays at least (room for another to overlap it, if it could)."""
MAX_WAIT = 5.0


class MemoryProbe:
    name = "test-memory-probe"
    version = "1"
    hashes_needed: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.dir = Path(os.environ[DIR_ENV])
        self.small_total = int(os.environ.get(SMALL_TOTAL_ENV, "0"))
        (self.dir / "small").mkdir(exist_ok=True)

    def _small_done(self) -> int:
        return len(os.listdir(self.dir / "small"))

    def _others(self, mine: Path) -> list[str]:
        return [n for n in os.listdir(self.dir) if n.startswith("large-") and n != mine.name]

    def _first_small_waits(self) -> None:
        """The first small file waits (a while) for a large one to be in a worker, so the
        two can be seen side by side however fast small files are."""
        try:
            os.close(os.open(self.dir / "first-small", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        started = time.monotonic()
        while not self._others(self.dir / "none") and time.monotonic() - started < MAX_WAIT:
            time.sleep(0.02)

    def scan(self, obj: Any) -> list[Any]:
        from aegis_engine.scanning.worker_pool import LARGE_FILE_BYTES

        if obj.depth != 0 or not obj.name.startswith(("small-", "large-")):
            return []  # e.g. the preload server's warm-up
        if obj.size < LARGE_FILE_BYTES:
            self._first_small_waits()
            (self.dir / "small" / obj.name).touch()
            return []
        mark = self.dir / f"large-{obj.name}"
        mark.touch()
        try:
            overlap = bool(self._others(mark))
            before = self._small_done()
            started = time.monotonic()
            time.sleep(HOLD)
            while True:
                overlap = overlap or bool(self._others(mark))
                done = self._small_done()
                if done > before or done >= self.small_total:
                    break
                if time.monotonic() - started > MAX_WAIT:
                    break
                time.sleep(0.02)
            overlap = overlap or bool(self._others(mark))
            word = "overlap" if overlap else "flowed" if done > before else "waited"
            with open(self.dir / "log", "a") as log:
                log.write(f"{word} {obj.name}\n")

        finally:
            mark.unlink()
        return []


def make_probe(_ctx: object) -> MemoryProbe:
    return MemoryProbe()
