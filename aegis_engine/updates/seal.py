"""Sealed form of content: what Aegis stores and ships so that no rule can match it.

A sealed object is ``MAGIC`` + the zstd-compressed content XOR-ed with a fixed SHAKE-256 key
stream. It is an encoding, not encryption: its only jobs are that no byte sequence of a rule
or a hash list (e.g. EICAR's string inside a YARA rule) appears in what lies on disk, in the
update repository, on a USB copy or in the content store, and that the files are smaller.
Integrity comes from the signed SHA-256 of the plain content, checked after unsealing.
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO

import pyzstd

from ..errors import ContentError

__all__ = ["MAGIC", "is_sealed", "seal", "seal_file", "unseal", "unseal_file"]

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


# -- large objects: sealed in frames, streamed file to file --------------------------------

FRAMES_MAGIC = b"AEGIS-SEALED-FRAMES-1\n"
FRAME = 8 * 1024 * 1024
"""Plain bytes per frame: what a streamed seal or unseal holds in memory at most (x ~2)."""
_LEN = 8


def seal_file(src: BinaryIO, dst: BinaryIO, level: int = 3) -> None:
    """Seal the stream ``src`` into ``dst`` frame by frame: ``FRAMES_MAGIC``, then for each
    frame of at most :data:`FRAME` plain bytes its sealed length (8 bytes, big-endian) and
    :func:`seal` of it."""
    dst.write(FRAMES_MAGIC)
    while chunk := src.read(FRAME):
        sealed = seal(chunk, level)
        dst.write(len(sealed).to_bytes(_LEN, "big"))
        dst.write(sealed)


def unseal_file(src: BinaryIO, dst: BinaryIO, max_size: int) -> int:
    """Unseal a framed object from ``src`` into ``dst``; the plain length. Raises
    :class:`ContentError` for a damaged object or one larger than ``max_size``."""
    if src.read(len(FRAMES_MAGIC)) != FRAMES_MAGIC:
        raise ContentError("not a framed sealed Aegis object")
    total = 0
    while head := src.read(_LEN):
        size = int.from_bytes(head, "big")
        if len(head) != _LEN or size > 2 * FRAME + 4096:
            raise ContentError("damaged framed sealed object (frame header)")
        frame = src.read(size)
        if len(frame) != size:
            raise ContentError("framed sealed object truncated")
        plain = unseal(frame, max_size=FRAME)
        total += len(plain)
        if total > max_size:
            raise ContentError(f"framed sealed object larger than {max_size} bytes")
        dst.write(plain)
    return total
