"""Zip archives in an emulator's dump (``emulate_child``): packed programs often carry one in a
data section (ClamAV's MEW, PEtite, Upack and WWPack samples do). Pure Python.

An archive is found from its end record (central directory offset and size give its start);
a local entry outside every such archive (its end record lost, as when an in-place
decompressor overwrites the tail of its own output) is rebuilt as a one-entry archive from its
local header, which gives the sizes. At most :data:`MAX_ZIPS` archives per dump.
"""

from __future__ import annotations

import struct

MAX_ZIPS = 16
_LOCAL = b"PK\x03\x04"
_END = b"PK\x05\x06"


def carve_zips(blob: bytes) -> list[bytes]:
    found: list[bytes] = []
    spans: list[tuple[int, int]] = []
    at = blob.find(_END)
    while at >= 0 and len(found) < MAX_ZIPS:
        if at + 22 <= len(blob):
            cd_size, cd_offset, comment = struct.unpack_from("<IIH", blob, at + 12)
            start = at - cd_size - cd_offset
            if start >= 0 and blob[start : start + 4] == _LOCAL:
                end = min(len(blob), at + 22 + comment)
                spans.append((start, end))
                found.append(blob[start:end])
        at = blob.find(_END, at + 4)
    at = blob.find(_LOCAL)
    while at >= 0 and len(found) < MAX_ZIPS:
        if not any(start <= at < end for start, end in spans):
            entry = _local_entry(blob, at)
            if entry is not None:
                found.append(entry)
        at = blob.find(_LOCAL, at + 4)
    return found


def _local_entry(blob: bytes, at: int) -> bytes | None:
    """A one-entry zip made from the local entry at ``at``, or None when its header does not
    give its size or the data runs past the blob."""
    if at + 30 > len(blob):
        return None
    flags, method, time, date, crc, csize, usize, nlen, xlen = struct.unpack_from(
        "<HHHHIIIHH", blob, at + 6
    )
    end = at + 30 + nlen + xlen + csize
    if (flags & 8 and not csize) or not nlen or end > len(blob):
        return None
    local = blob[at:end]
    name = blob[at + 30 : at + 30 + nlen]
    central = b"PK\x01\x02" + struct.pack(
        "<HHHHHHIIIHHHHHII", 20, 20, flags, method, time, date, crc, csize, usize, nlen,
        0, 0, 0, 0, 0, 0,
    ) + name  # fmt: skip
    end_record = _END + struct.pack("<HHHHIIH", 0, 0, 1, 1, len(central), len(local), 0)
    return local + central + end_record
