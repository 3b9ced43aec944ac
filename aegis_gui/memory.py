"""Keeps the idle tray app small.

* PySide6's ``__feature__`` import hook reads the source of every module imported after
  PySide6 (``inspect.getsource``) to see whether it uses PySide, and ``linecache`` keeps all
  that text: about 8 MB for Aegis. It is only needed to print tracebacks, so it is dropped.
* glibc keeps freed heap pages; ``malloc_trim`` hands them back to the system.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import linecache
import sys
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def trim() -> None:
    """Drop caches that only cost memory while idle (call it from the GUI thread)."""
    linecache.clearcache()
    gc.collect()
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
