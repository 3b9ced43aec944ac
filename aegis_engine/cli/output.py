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
    """One line on a terminal, rewritten at most ten times a second; silent elsewhere."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self._last = 0.0
        self._shown = False

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
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
