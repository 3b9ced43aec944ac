"""Bounded reading of Aegis's own data files: regular files only, a size cap, a JSON depth cap.

A consent file, vault index or journal record that is a FIFO, ``/dev/zero``, a gigabyte or a
million nested brackets is refused with a ``ValueError``/``OSError`` naming what is wrong,
instead of hanging, filling memory or raising ``RecursionError``.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "NotRegularFile",
    "TooLarge",
    "check_json_depth",
    "load_json_file",
    "loads_bounded",
    "read_regular_file",
]

DEFAULT_MAX_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64


class NotRegularFile(OSError):
    """The path is a device, FIFO, socket or folder: not a file Aegis reads."""


class TooLarge(ValueError):
    """The file or text is over the size limit."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_regular_file(path: str | os.PathLike[str], max_bytes: int | None) -> bytes:
    """The bytes of ``path``, which must be a regular file (symlinks to one are followed).

    Opened with ``O_NONBLOCK`` so that a FIFO never blocks the open; raises
    :class:`NotRegularFile` for anything but a regular file and :class:`TooLarge` past
    ``max_bytes`` (None: no limit). Other failures are the ``OSError`` of the system call.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(f"{os.fsdecode(path)} is {_kind(st.st_mode)}, not a regular file")
        if max_bytes is not None and st.st_size > max_bytes:
            raise TooLarge(f"{os.fsdecode(path)} is larger than {max_bytes} bytes")
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if max_bytes is not None and total > max_bytes:  # grew while read
                raise TooLarge(f"{os.fsdecode(path)} is larger than {max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def check_json_depth(text: str | bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
    """Raise ``ValueError`` when ``text`` nests arrays/objects deeper than ``max_depth``.

    A linear scan that skips string literals; run before ``json.loads``, whose recursion
    would otherwise raise ``RecursionError`` on deep input."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    depth = 0
    in_string = False
    escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > max_depth:
                raise ValueError(f"JSON nested deeper than {max_depth} levels")
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1


def loads_bounded(
    text: str | bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Any:
    """``json.loads`` with a size and a nesting limit; every failure is a ``ValueError``."""
    if len(text) > max_bytes:
        raise TooLarge(f"JSON text larger than {max_bytes} bytes")
    check_json_depth(text, max_depth)
    try:
        return json.loads(text)
    except RecursionError as exc:  # pragma: no cover - the depth check comes first
        raise ValueError(f"JSON nested too deeply: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"JSON is not valid UTF-8: {exc}") from None


def load_json_file(
    path: Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Any:
    """Read and parse a JSON file with :func:`read_regular_file` and :func:`loads_bounded`."""
    return loads_bounded(
        read_regular_file(path, max_bytes), max_bytes=max_bytes, max_depth=max_depth
    )
