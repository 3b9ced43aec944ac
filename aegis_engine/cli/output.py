"""How the CLI shows things: paths that are safe to print, sizes, a throttled progress line."""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

from ..display import display_path, human_bytes


def parse_size(text: str) -> int:
    """``100M``, ``2G``, ``512k`` or a plain number of bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower().removesuffix("b")
    mult = units.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in units else text
    try:
        value = float(number) * mult
    except ValueError as exc:
        raise ValueError(f"not a size: {text!r} (use e.g. 100M, 2G, 512k)") from exc
    if value < 0:
        raise ValueError("a size must not be negative")
    return int(value)


__all__ = ["ProgressLine", "display_path", "human_bytes", "parse_size"]


class ProgressLine:
    """Scan progress on stderr. On a terminal: one line, rewritten at most ten times a second.
    Elsewhere (a log, a pipe) only when asked (``force``, ``aegis scan --progress``): one
    plain line every ``LINE_INTERVAL`` seconds, the first at once."""

    LINE_INTERVAL = 5.0

    def __init__(self, stream: TextIO = sys.stderr, *, force: bool = False) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.enabled = self.tty or force
        self.interval = 0.1 if self.tty else self.LINE_INTERVAL
        self._last: float | None = None
        self._shown = False

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self._last is not None and now - self._last < self.interval:
            return
        self._last = now
        if not self.tty:
            self.stream.write(text + "\n")
            self.stream.flush()
            return
        width = shutil.get_terminal_size((80, 20)).columns - 1
        if len(text) > width:
            text = text[: width - 1] + "…"
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
