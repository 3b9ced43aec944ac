"""How the CLI shows things: paths that are safe to print, sizes, a throttled progress line."""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import TextIO


def display_path(path: str) -> str:
    """A printable form of a path: bytes that are not valid UTF-8 become ``\\xNN``."""
    try:
        raw = os.fsencode(path)
    except UnicodeEncodeError:
        return path.encode("utf-8", "backslashreplace").decode("ascii")
    text = raw.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


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
