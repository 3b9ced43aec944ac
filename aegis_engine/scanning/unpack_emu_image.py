"""The memory image of a PE32 as the Windows loader would lay it out, for the emulating
unpacker (``emulate_child``). Lenient where packers bend the format (MEW's and Upack's
headers overlap the DOS header and their sections overlap the headers), strict on sizes: an
image is at most :data:`MAX_IMAGE` bytes. Pure Python; reads the headers with ``struct``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..errors import ContainerError

PAGE = 0x1000
MAX_IMAGE = 64 * 1024 * 1024
"""Largest SizeOfImage emulated."""
MAX_SECTIONS = 96
MAX_IMPORTS = 8192
"""Import names read from one image (all DLLs together)."""
LOWEST_BASE = 0x10000
HIGHEST_END = 0x5FFF0000
"""The image must fit below the emulator's own regions (heap, DLL stubs, stack, TEB)."""


def align_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align


@dataclass
class Section:
    name: bytes
    rva: int
    vsize: int
    raw_ptr: int
    raw_size: int
    flags: int


@dataclass
class Image:
    """A mapped PE: ``memory`` holds ``size`` bytes to be placed at ``base``."""

    base: int
    size: int
    entry: int
    """Entry point RVA."""
    header_offset: int
    """Offset of ``PE\\0\\0`` (the DOS header's e_lfanew)."""
    sections: list[Section]
    memory: bytearray
    imports: list[tuple[str, list[tuple[int, str]]]] = field(default_factory=list)
    """Per DLL named in the import directory: (IAT slot RVA, function name or ``#ordinal``)."""

    def contains(self, address: int) -> bool:
        return self.base <= address < self.base + self.size

    def section_span(self, address: int) -> tuple[int, int]:
        """[start, end) of the section holding ``address`` (the headers when none does)."""
        rva = address - self.base
        for s in self.sections:
            if s.rva <= rva < s.rva + max(s.vsize, s.raw_size, 1):
                return self.base + s.rva, self.base + s.rva + max(s.vsize, s.raw_size, 1)
        return self.base, self.base + PAGE


def _u16(data: bytes | bytearray, at: int) -> int:
    return int(struct.unpack_from("<H", data, at)[0])


def _u32(data: bytes | bytearray, at: int) -> int:
    return int(struct.unpack_from("<I", data, at)[0])


def load(data: bytes) -> Image:
    """Map ``data`` (a PE32 file); ContainerError when it is not one we can emulate."""
    if len(data) < 0x40 or data[:2] != b"MZ":
        raise ContainerError("not a PE file")
    lfanew = _u32(data, 0x3C)
    if lfanew + 0x78 > len(data) or data[lfanew : lfanew + 4] != b"PE\x00\x00":
        raise ContainerError("no PE header")
    machine, count = struct.unpack_from("<HH", data, lfanew + 4)
    opt_size = _u16(data, lfanew + 20)
    opt = lfanew + 24
    if machine != 0x14C or _u16(data, opt) != 0x10B:
        raise ContainerError("not a 32-bit x86 PE")
    entry = _u32(data, opt + 16)
    base = _u32(data, opt + 28)
    salign = _u32(data, opt + 32) or PAGE
    falign = _u32(data, opt + 36)
    size_of_image = _u32(data, opt + 56)
    size_of_headers = _u32(data, opt + 60)
    size = align_up(max(size_of_image, PAGE), PAGE)
    if size > MAX_IMAGE:
        raise ContainerError(f"image of {size_of_image} bytes is too large to emulate")
    if base % 0x10000 or base < LOWEST_BASE or base + size > HIGHEST_END:
        raise ContainerError(f"image base {base:#x} is outside the emulated range")
    memory = bytearray(size)
    head = data[: min(len(data), max(size_of_headers, lfanew + 24 + opt_size), size)]
    memory[: len(head)] = head
    table = opt + opt_size
    sections: list[Section] = []
    for i in range(min(count, MAX_SECTIONS)):
        entry_at = table + 40 * i
        if entry_at + 40 > len(data):
            break
        name = data[entry_at : entry_at + 8]
        vsize, rva, raw_size, raw_ptr = struct.unpack_from("<IIII", data, entry_at + 8)
        flags = _u32(data, entry_at + 36)
        sections.append(Section(name, rva, vsize, raw_ptr, raw_size, flags))
        if falign >= 0x200:
            raw_ptr &= ~0x1FF  # the loader rounds the file offset down to a sector
            raw_size = align_up(raw_size, falign)
        span = align_up(vsize, salign) if vsize else raw_size
        length = min(raw_size, span, max(0, len(data) - raw_ptr), max(0, size - rva))
        if length > 0 and rva < size:
            memory[rva : rva + length] = data[raw_ptr : raw_ptr + length]
    image = Image(base, size, entry, lfanew, sections, memory)
    if opt_size >= 96 + 16:
        image.imports = _imports(memory, _u32(memory, opt + 104) if opt + 108 <= size else 0)
    return image


def _cstring(memory: bytearray, at: int, limit: int = 256) -> str:
    if not 0 <= at < len(memory):
        return ""
    raw = bytes(memory[at : at + limit]).split(b"\x00", 1)[0]
    return raw.decode("latin-1")


def _imports(memory: bytearray, rva: int) -> list[tuple[str, list[tuple[int, str]]]]:
    """The import directory read from the mapped image (damage ends the list quietly)."""
    found: list[tuple[str, list[tuple[int, str]]]] = []
    if not rva:
        return found
    end = len(memory)
    total = 0
    for n in range(256):
        desc = rva + 20 * n
        if desc + 20 > end:
            break
        lookup, _, _, name_rva, iat = struct.unpack_from("<IIIII", memory, desc)
        if not name_rva and not iat:
            break
        dll = _cstring(memory, name_rva)
        if not dll or not iat:
            continue
        names: list[tuple[int, str]] = []
        thunks = lookup or iat
        for k in range(MAX_IMPORTS - total):
            at = thunks + 4 * k
            if at + 4 > end or iat + 4 * k + 4 > end:
                break
            value = _u32(bytes(memory[at : at + 4]), 0)
            if not value:
                break
            if value & 0x80000000:
                names.append((iat + 4 * k, f"#{value & 0xFFFF}"))
            else:
                names.append((iat + 4 * k, _cstring(memory, value + 2)))
        found.append((dll, names))
        total += len(names)
    return found


def as_file(image: Image, memory: bytes, entry: int | None = None) -> bytes:
    """A dumped image made readable as a PE file again: every section's file offset and raw
    size become its virtual address and size (the layout of a memory dump), and the entry
    point ``entry`` (an address) when given. Headers that do not parse are left as they are."""
    out = bytearray(memory)
    try:
        opt = image.header_offset + 24
        if entry is not None:
            struct.pack_into("<I", out, opt + 16, entry - image.base)
        count = _u16(out, image.header_offset + 6)
        table = opt + _u16(out, image.header_offset + 20)
        struct.pack_into("<I", out, opt + 36, PAGE)  # FileAlignment
        for i in range(min(count, MAX_SECTIONS)):
            at = table + 40 * i
            if at + 40 > min(len(out), PAGE * 4):
                break
            vsize, rva = struct.unpack_from("<II", out, at + 8)
            length = max(0, min(align_up(vsize, PAGE), len(out) - rva))
            struct.pack_into("<II", out, at + 16, length, rva)
    except struct.error:
        return bytes(memory)
    return bytes(out)
