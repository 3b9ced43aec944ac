"""UPX-packed PE files, unpacked natively: the ``UPX!`` pack header gives the method and the
sizes, the compressed image starts at the raw data of the second section (``UPX1``), and the
NRV2B/NRV2D/NRV2E decoders (UCL, little-endian 32-bit bit buffers, as UPX writes them for
Windows) rebuild the section data. The result is not a runnable PE but holds the original
code and data, which is what detectors look at.

The output is capped at the header's unpacked size (and max-file-size), charged to the budget
as it grows, and max-scan-time is checked as it goes. Damaged input ends the member early.
LZMA-packed files (UPX ``--lzma``) are not decoded here (the emulator, when installed, may).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

from ..detectors.base import Buffer
from .budget import ExtractionBudget, Member
from .unpack_io import MemberSink

_HEADER_PROBE = 4096
_NRV2B_LE32, _NRV2D_LE32, _NRV2E_LE32 = 2, 5, 8
_CHECK_EVERY = 1 << 16


class _Bits:
    """UCL's le32 bit reader: a 32-bit little-endian word, its bits taken high to low."""

    def __init__(self, src: bytes, pos: int) -> None:
        self.src = src
        self.pos = pos
        self.word = 0
        self.left = 0

    def bit(self) -> int:
        if not self.left:
            if self.pos + 4 > len(self.src):
                raise IndexError("compressed data ends early")
            self.word = int.from_bytes(self.src[self.pos : self.pos + 4], "little")
            self.pos += 4
            self.left = 32
        self.left -= 1
        return (self.word >> self.left) & 1

    def byte(self) -> int:
        value = self.src[self.pos]
        self.pos += 1
        return value


def _literals(bits: _Bits, out: bytearray) -> None:
    while bits.bit():
        out.append(bits.byte())


_MAX_OFFSET = 1 << 25


def _gamma_guard(value: int, cap: int) -> int:
    """A hostile bit stream can grow an offset or length code without end: stop it."""
    if value > cap:
        raise IndexError("offset or length code out of range")
    return value


def _copy(out: bytearray, m_off: int, m_len: int, limit: int) -> None:
    start = len(out) - m_off
    if start < 0:
        raise IndexError("match before the start of the output")
    count = min(m_len + 1, limit + 1 - len(out))
    if m_off > count:
        out += out[start : start + count]
    else:  # the match overlaps what it writes: byte by byte
        for i in range(count):
            out.append(out[start + i])


def _gamma(bits: _Bits, cap: int, *, paired: bool = False) -> int:
    """A UCL gamma code: data bits each followed by a stop bit. NRV2D/E offsets (``paired``)
    carry one more data bit after each stop bit that says go on."""
    value = 1
    while True:
        value = _gamma_guard(value * 2 + bits.bit(), cap)
        if bits.bit():
            return value
        if paired:
            value = (value - 1) * 2 + bits.bit()


def _length(bits: _Bits, first: int, limit: int, *, e: bool) -> int:
    """A match length before the far-offset bonus; ``first`` is its first bit."""
    if not e:  # NRV2B and NRV2D
        return first * 2 + bits.bit() or _gamma(bits, limit) + 2
    if first:
        return 1 + bits.bit()
    if bits.bit():
        return 3 + bits.bit()
    return _gamma(bits, limit) + 3


def _decode(bits: _Bits, out: bytearray, limit: int, tick: Callable[[], None], method: int) -> None:
    """NRV2B, NRV2D and NRV2E: they differ in how the offset carries the length's first bit,
    in how a length is coded (E) and in where a far match gets one more byte."""
    paired = method != _NRV2B_LE32
    far = 0x500 if paired else 0xD00
    last_off = 1
    while len(out) <= limit:
        tick()
        _literals(bits, out)
        m_off = _gamma(bits, _MAX_OFFSET, paired=paired)
        if m_off == 2:
            m_off = last_off
            first = bits.bit()
        else:
            m_off = ((m_off - 3) * 256 + bits.byte()) & 0xFFFFFFFF
            if m_off == 0xFFFFFFFF:
                return
            if paired:
                first = (m_off ^ 0xFFFFFFFF) & 1
                m_off = (m_off >> 1) + 1
            else:
                m_off += 1
                first = bits.bit()
            last_off = m_off
        m_len = _length(bits, first, limit, e=method == _NRV2E_LE32)
        _copy(out, m_off, m_len + (m_off > far), limit)


def _second_section_start(data: Buffer) -> int | None:
    (lfanew,) = struct.unpack_from("<I", data, 0x3C)
    if lfanew + 24 > len(data):
        return None
    (count,) = struct.unpack_from("<H", data, lfanew + 6)
    (opt_size,) = struct.unpack_from("<H", data, lfanew + 20)
    entry = lfanew + 24 + opt_size + 40
    if count < 2 or entry + 40 > len(data):
        return None
    return int(struct.unpack_from("<I", data, entry + 20)[0])


def unpack_upx(data: Buffer, budget: ExtractionBudget, tmpdir: Path) -> Member | None:
    """The unpacked sections of a UPX-packed PE as one member, or None when this is not a
    UPX file this decoder handles (or it is damaged before anything came out)."""
    if len(data) < 0x40:
        return None
    head = bytes(data[:_HEADER_PROBE])
    at = head.find(b"UPX!")
    if at < 0 or at + 32 > len(head):
        return None
    method = head[at + 6]
    u_len, c_len = struct.unpack_from("<II", head, at + 16)
    start = _second_section_start(data)
    if method not in (_NRV2B_LE32, _NRV2D_LE32, _NRV2E_LE32) or start is None:
        return None
    max_size = budget.limits.max_file_size
    if not 0 < u_len <= (max_size or u_len) or not 0 < c_len <= len(data) - start:
        return None
    src = bytes(data[start : start + c_len])
    out = bytearray()
    charged = 0

    def tick() -> None:
        nonlocal charged
        if len(out) - charged >= _CHECK_EVERY:
            budget.add_bytes(len(out) - charged)  # also checks max-scan-time
            charged = len(out)

    bits = _Bits(src, 0)
    try:
        _decode(bits, out, u_len, tick, method)
    except IndexError:
        if not out:
            return None  # not what the header says: leave it to the emulator, if any
    budget.add_bytes(len(out) - charged)
    del out[u_len:]
    budget.add_file()
    with MemberSink("unpacked-upx", budget, tmpdir, charge=False) as sink:  # charged above
        sink.write(bytes(out))
        return sink.member()
