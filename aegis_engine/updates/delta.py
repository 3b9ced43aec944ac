"""Binary deltas between two versions of one content file: bsdiff4, or zstd's patch-from.

bsdiff4 gives the smallest patches but is slow and memory-hungry on large inputs; zstd with
the old file as a raw dictionary ("patch-from") is far faster for patches somewhat larger.
The publisher makes both and keeps the smaller (:func:`best_delta`); the client applies the
one the signed index names, within a memory limit.
"""

from __future__ import annotations

import bsdiff4
import pyzstd

from ..errors import ContentError

__all__ = ["MAX_DELTA_INPUT", "apply_delta", "best_delta", "make_delta"]

MAX_DELTA_INPUT = 256 * 1024 * 1024
"""Deltas are neither made nor applied for files larger than this (full blobs instead)."""
BSDIFF_MAX_INPUT = 16 * 1024 * 1024
"""bsdiff4 needs ~17 x the input in memory and minutes beyond this: zstd only above it."""


def _zstd_dict(base: bytes) -> pyzstd.ZstdDict:
    return pyzstd.ZstdDict(base, is_raw=True)


def _window_log(size: int) -> int:
    return max(20, min(31, (max(size, 1) - 1).bit_length() + 1))


def make_delta(base: bytes, new: bytes, algo: str) -> bytes:
    if algo == "bsdiff4":
        return bytes(bsdiff4.diff(base, new))
    if algo == "zstd":
        option: dict[int, int] = {
            # level 19 costs seconds per MB; above 2 MiB level 3 gives nearly the same patch
            pyzstd.CParameter.compressionLevel: 19 if len(new) <= 2 * 1024 * 1024 else 3,
            pyzstd.CParameter.windowLog: _window_log(len(base) + len(new)),
            pyzstd.CParameter.enableLongDistanceMatching: 1,
        }
        return pyzstd.compress(new, option, zstd_dict=_zstd_dict(base).as_prefix)
    raise ContentError(f"unknown delta algorithm {algo!r}")


def apply_delta(base: bytes, delta: bytes, algo: str, expected_length: int) -> bytes:
    """The new file; raises :class:`ContentError` for a broken delta or a wrong length."""
    if len(base) > MAX_DELTA_INPUT or expected_length > MAX_DELTA_INPUT:
        raise ContentError("file too large for a delta")
    try:
        if algo == "bsdiff4":
            out = bytes(bsdiff4.patch(base, delta))
        elif algo == "zstd":
            option: dict[int, int] = {pyzstd.DParameter.windowLogMax: 31}
            dec = pyzstd.ZstdDecompressor(_zstd_dict(base).as_prefix, option)
            out = dec.decompress(delta, max_length=expected_length + 1)
        else:
            raise ContentError(f"unknown delta algorithm {algo!r}")
    except (ValueError, MemoryError, pyzstd.ZstdError) as exc:
        raise ContentError(f"the {algo} delta cannot be applied: {exc}") from exc
    if len(out) != expected_length:
        raise ContentError(f"the {algo} delta gave {len(out)} bytes, not {expected_length}")
    return out


def best_delta(base: bytes, new: bytes) -> tuple[str, bytes] | None:
    """The smaller of the available deltas, or None when the files are too large."""
    if max(len(base), len(new)) > MAX_DELTA_INPUT:
        return None
    options = [("zstd", make_delta(base, new, "zstd"))]
    if max(len(base), len(new)) <= BSDIFF_MAX_INPUT:
        options.append(("bsdiff4", make_delta(base, new, "bsdiff4")))
    return min(options, key=lambda o: len(o[1]))
