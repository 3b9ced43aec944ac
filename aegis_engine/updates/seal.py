"""Sealed form of content: what Aegis stores and ships so that no rule can match it.

A sealed object is ``MAGIC`` + the zstd-compressed content XOR-ed with a fixed SHAKE-256 key
stream. It is an encoding, not encryption: its only jobs are that no byte sequence of a rule
or a hash list (e.g. EICAR's string inside a YARA rule) appears in what lies on disk, in the
update repository, on a USB copy or in the content store, and that the files are smaller.
Integrity comes from the signed SHA-256 of the plain content, checked after unsealing.
"""

from __future__ import annotations

import hashlib

import pyzstd

from ..errors import ContentError

__all__ = ["MAGIC", "is_sealed", "seal", "unseal"]

MAGIC = b"AEGIS-SEALED-1\n"
_STREAM_SEED = b"aegis content seal v1"
MAX_UNSEALED = 1 << 30


def _xor(data: bytes) -> bytes:
    if not data:
        return b""
    stream = hashlib.shake_256(_STREAM_SEED).digest(len(data))
    n = int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")
    return n.to_bytes(len(data), "little")


def seal(plain: bytes, level: int = 3) -> bytes:
    return MAGIC + _xor(pyzstd.compress(plain, level))


def is_sealed(blob: bytes) -> bool:
    return blob.startswith(MAGIC)


def unseal(blob: bytes, max_size: int = MAX_UNSEALED) -> bytes:
    """The plain content of a sealed object (decompression bounded by ``max_size``)."""
    if not blob.startswith(MAGIC):
        raise ContentError("not a sealed Aegis content object")
    try:
        dec = pyzstd.ZstdDecompressor()
        out = dec.decompress(_xor(blob[len(MAGIC) :]), max_length=max_size)
    except pyzstd.ZstdError as exc:
        raise ContentError(f"damaged sealed content object: {exc}") from exc
    if not dec.eof:
        raise ContentError(f"sealed content object larger than {max_size} bytes or truncated")
    return out
