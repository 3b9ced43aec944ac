"""Text for people, shared by the CLI and the GUI: printable paths and sizes."""

from __future__ import annotations

import os
import re


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


def human_size(n: int) -> str:
    """A size as people read it, in binary units as limits are set: ``100 MiB``,
    ``190.4 MiB``, ``512 bytes``."""
    if abs(n) < 1024:
        return f"{n} bytes" if n != 1 else "1 byte"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if abs(value) < 1024 or unit == "TiB":
            text = f"{value:.1f}".removesuffix(".0")
            return f"{text} {unit}"
    raise AssertionError("unreachable")


_RAW_SIZE_RE = re.compile(
    r"\b(\d{4,}) bytes\b|(?<=limit of )(\d{4,})\b|(?<=\(limit )(\d{4,})(?=\))"
)


def readable_sizes(text: str) -> str:
    """``text`` with raw byte counts (``199603328 bytes``, ``limit of 104857600``) written
    as :func:`human_size` does: for limit messages already stored (scan cache, history) and
    those composed before this helper existed."""
    return _RAW_SIZE_RE.sub(lambda m: human_size(int(next(g for g in m.groups() if g))), text)
