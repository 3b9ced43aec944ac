"""Hash an object once, all needed algorithms in one pass, in slices that release the GIL."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from ..detectors.base import Buffer

_SLICE = 1 << 20  # hashlib releases the GIL for updates larger than 2 KiB


def compute_hashes(data: Buffer, algorithms: Iterable[str]) -> dict[str, str]:
    """Hex digests of ``data`` for each algorithm (``sha256``, ``sha1``, ``md5``)."""
    hashers = [hashlib.new(a) for a in sorted(set(algorithms))]
    view = memoryview(data)
    try:
        for start in range(0, len(view), _SLICE):
            chunk = view[start : start + _SLICE]
            for h in hashers:
                h.update(chunk)
            chunk.release()
    finally:
        view.release()
    return {h.name: h.hexdigest() for h in hashers}
